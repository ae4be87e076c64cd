// SPDX-License-Identifier: GPL-2.0
/*
 * numacma_dma_test — lets user space call dma_alloc_coherent() and
 * dma_free_coherent() on a platform device bound to a chosen NUMA node (or to
 * NUMA_NO_NODE) with a chosen coherent DMA mask, and read back where each
 * buffer landed. It is the kernel side of numacma's differential tests
 * (tests/kernel/): the same trace runs here and through `numacma replay`.
 *
 * Interface: debugfs <debugfs>/numacma_dma_test/ctl. Each write is one command,
 * each read returns the result line of the last command:
 *
 *   alloc ID NODE BYTES MASK   ID: 0..MAX_BUFS-1, NODE: -1 or an online node,
 *                              BYTES: decimal, MASK: hex coherent DMA mask
 *     -> "ok alloc ID dma=0x<dma> nid=<page_to_nid> cpu=<cpu> pages=<n>"
 *        "fail alloc ID cpu=<cpu>"         (dma_alloc_coherent returned NULL)
 *   free ID
 *     -> "ok free ID"
 *   nodes
 *     -> "nodes <online node ids, comma separated>"
 *   nid PFN                    the node of a page frame (page_to_nid)
 *     -> "ok nid PFN node=<node>"
 *   cma I                      the I-th CMA area (for kernels without CMA
 *                              debugfs, e.g. Debian's arm64 6.1): found with
 *                              cma_for_each_area, which is not exported, by
 *                              its kallsyms address (through a kprobe)
 *     -> "ok cma I name=<name> base_pfn=<pfn> count=<pages>" or "none cma I"
 *
 * A write that cannot be carried out (bad syntax, unknown node, busy or
 * unknown id, a mask dma_coerce_mask_and_coherent refuses) fails with -EINVAL,
 * -EBUSY, -ENOENT or -EIO and leaves the result line saying why ("error ...").
 * There is no IOMMU in the guests, so the DMA address is the physical address
 * (dma-direct). On arm64 the devices are not DMA-coherent and the CPU address is
 * a vmalloc remap of the pages (the node is read through vmalloc_to_page).
 * Buffers still live when the module is unloaded are freed.
 *
 * Written for numacma (tests/kernel/module/); built out of tree with
 * `make -C <kernel build dir> M=<this dir>`.
 */
#include <linux/cma.h>
#include <linux/debugfs.h>
#include <linux/kprobes.h>
#include <linux/dma-mapping.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/nodemask.h>
#include <linux/platform_device.h>
#include <linux/slab.h>
#include <linux/smp.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>

#define MAX_BUFS 65536
#define RESULT_LEN 160

struct ntest_buf {
	void *cpu;
	dma_addr_t dma;
	size_t size;
	int dev; /* index into devs[] */
};

/* devs[0] has NUMA_NO_NODE; devs[1 + n] is on node n (when n is online) */
static struct platform_device *devs[1 + MAX_NUMNODES];
static struct ntest_buf *bufs;
static DEFINE_MUTEX(ntest_lock);
static char result[RESULT_LEN];
static struct dentry *dir;

static struct device *dev_for_node(int node, int *index)
{
	if (node == NUMA_NO_NODE) {
		*index = 0;
		return &devs[0]->dev;
	}
	if (node < 0 || node >= MAX_NUMNODES || !devs[1 + node])
		return NULL;
	*index = 1 + node;
	return &devs[1 + node]->dev;
}

static int do_alloc(unsigned long id, int node, unsigned long bytes, u64 mask)
{
	struct device *dev;
	int index, cpu, ret;
	void *p;
	dma_addr_t dma;

	if (id >= MAX_BUFS) {
		snprintf(result, RESULT_LEN, "error alloc %lu: id out of range\n", id);
		return -EINVAL;
	}
	if (bufs[id].cpu) {
		snprintf(result, RESULT_LEN, "error alloc %lu: id is live\n", id);
		return -EBUSY;
	}
	dev = dev_for_node(node, &index);
	if (!dev) {
		snprintf(result, RESULT_LEN, "error alloc %lu: no device on node %d\n", id, node);
		return -ENOENT;
	}
	ret = dma_coerce_mask_and_coherent(dev, mask);
	if (ret) {
		snprintf(result, RESULT_LEN, "error alloc %lu: mask 0x%llx refused: %d\n",
			 id, (unsigned long long)mask, ret);
		return -EIO;
	}
	p = dma_alloc_coherent(dev, bytes, &dma, GFP_KERNEL);
	cpu = raw_smp_processor_id();
	if (!p) {
		snprintf(result, RESULT_LEN, "fail alloc %lu cpu=%d\n", id, cpu);
		return 0;
	}
	bufs[id].cpu = p;
	bufs[id].dma = dma;
	bufs[id].size = bytes;
	bufs[id].dev = index;
	snprintf(result, RESULT_LEN, "ok alloc %lu dma=0x%llx nid=%d cpu=%d pages=%lu\n", id,
		 (unsigned long long)dma,
		 page_to_nid(is_vmalloc_addr(p) ? vmalloc_to_page(p) : virt_to_page(p)), cpu,
		 (unsigned long)(PAGE_ALIGN(bytes) >> PAGE_SHIFT));
	return 0;
}

static int do_free(unsigned long id)
{
	if (id >= MAX_BUFS || !bufs[id].cpu) {
		snprintf(result, RESULT_LEN, "error free %lu: no live buffer\n", id);
		return -ENOENT;
	}
	dma_free_coherent(&devs[bufs[id].dev]->dev, bufs[id].size, bufs[id].cpu, bufs[id].dma);
	bufs[id].cpu = NULL;
	snprintf(result, RESULT_LEN, "ok free %lu\n", id);
	return 0;
}

static int do_nodes(void)
{
	int n, len;

	len = snprintf(result, RESULT_LEN, "nodes");
	for_each_online_node(n)
		len += snprintf(result + len, RESULT_LEN - len, "%s%d", len == 5 ? " " : ",", n);
	snprintf(result + len, RESULT_LEN - len, "\n");
	return 0;
}

static int do_nid(unsigned long pfn)
{
	if (!pfn_valid(pfn)) {
		snprintf(result, RESULT_LEN, "error nid %lu: not a valid pfn\n", pfn);
		return -EINVAL;
	}
	snprintf(result, RESULT_LEN, "ok nid %lu node=%d\n", pfn, page_to_nid(pfn_to_page(pfn)));
	return 0;
}

#if defined(CONFIG_CMA) && defined(CONFIG_KPROBES)
typedef int (*cma_iter_fn)(struct cma *cma, void *data);
static int (*for_each_area)(cma_iter_fn it, void *data);
static phys_addr_t (*area_base)(const struct cma *cma);
static unsigned long (*area_size)(const struct cma *cma);
static const char *(*area_name)(const struct cma *cma);

/* kallsyms_lookup_name is not exported either: a kprobe on it tells its address */
static unsigned long lookup(const char *name)
{
	static unsigned long (*kln)(const char *name);
	struct kprobe kp = { .symbol_name = "kallsyms_lookup_name" };

	if (!kln) {
		if (register_kprobe(&kp) < 0)
			return 0;
		kln = (void *)kp.addr;
		unregister_kprobe(&kp);
	}
	return kln ? kln(name) : 0;
}

struct cma_nth {
	unsigned long want, seen;
	int found;
};

static int cma_nth_it(struct cma *cma, void *data)
{
	struct cma_nth *c = data;

	if (c->seen++ != c->want)
		return 0;
	snprintf(result, RESULT_LEN, "ok cma %lu name=%s base_pfn=%lu count=%lu\n", c->want,
		 area_name(cma), (unsigned long)PHYS_PFN(area_base(cma)),
		 area_size(cma) >> PAGE_SHIFT);
	c->found = 1;
	return 1;
}

static int do_cma(unsigned long i)
{
	struct cma_nth c = { .want = i };

	if (!for_each_area) {
		for_each_area = (void *)lookup("cma_for_each_area");
		area_base = (void *)lookup("cma_get_base");
		area_size = (void *)lookup("cma_get_size");
		area_name = (void *)lookup("cma_get_name");
	}
	if (!for_each_area || !area_base || !area_size || !area_name) {
		for_each_area = NULL;
		snprintf(result, RESULT_LEN, "error cma: cma_for_each_area not found\n");
		return -ENOENT;
	}
	for_each_area(cma_nth_it, &c);
	if (!c.found)
		snprintf(result, RESULT_LEN, "none cma %lu\n", i);
	return 0;
}
#else
static int do_cma(unsigned long i)
{
	snprintf(result, RESULT_LEN, "error cma: needs CONFIG_CMA and CONFIG_KPROBES\n");
	return -ENOENT;
}
#endif

static ssize_t ctl_write(struct file *f, const char __user *ubuf, size_t len, loff_t *ppos)
{
	char cmd[128];
	unsigned long id, bytes;
	unsigned long long mask;
	int node, ret;

	if (len >= sizeof(cmd))
		return -EINVAL;
	if (copy_from_user(cmd, ubuf, len))
		return -EFAULT;
	cmd[len] = '\0';

	mutex_lock(&ntest_lock);
	if (sscanf(cmd, "alloc %lu %d %lu %llx", &id, &node, &bytes, &mask) == 4) {
		ret = do_alloc(id, node, bytes, mask);
	} else if (sscanf(cmd, "free %lu", &id) == 1) {
		ret = do_free(id);
	} else if (sscanf(cmd, "nid %lu", &id) == 1) {
		ret = do_nid(id);
	} else if (sscanf(cmd, "cma %lu", &id) == 1) {
		ret = do_cma(id);
	} else if (!strncmp(cmd, "nodes", 5)) {
		ret = do_nodes();
	} else {
		snprintf(result, RESULT_LEN, "error: unknown command\n");
		ret = -EINVAL;
	}
	mutex_unlock(&ntest_lock);
	return ret ? ret : len;
}

static ssize_t ctl_read(struct file *f, char __user *ubuf, size_t len, loff_t *ppos)
{
	ssize_t ret;

	mutex_lock(&ntest_lock);
	ret = simple_read_from_buffer(ubuf, len, ppos, result, strlen(result));
	mutex_unlock(&ntest_lock);
	return ret;
}

static const struct file_operations ctl_fops = {
	.owner = THIS_MODULE,
	.read = ctl_read,
	.write = ctl_write,
	.llseek = default_llseek,
};

static struct platform_device *make_dev(int id, int node)
{
	struct platform_device *pdev;
	int ret;

	pdev = platform_device_alloc("numacma-dma-test", id);
	if (!pdev)
		return ERR_PTR(-ENOMEM);
	set_dev_node(&pdev->dev, node);
	ret = platform_device_add(pdev);
	if (ret) {
		platform_device_put(pdev);
		return ERR_PTR(ret);
	}
	/* the device core may have given it its parent's node: set it again */
	set_dev_node(&pdev->dev, node);
	return pdev;
}

static void destroy(void)
{
	unsigned long i;
	int n;

	debugfs_remove_recursive(dir);
	if (bufs) {
		for (i = 0; i < MAX_BUFS; i++)
			if (bufs[i].cpu)
				do_free(i);
		vfree(bufs);
		bufs = NULL;
	}
	for (n = 0; n < ARRAY_SIZE(devs); n++) {
		if (devs[n])
			platform_device_unregister(devs[n]);
		devs[n] = NULL;
	}
}

static int __init ntest_init(void)
{
	struct platform_device *pdev;
	int n;

	bufs = vzalloc(sizeof(*bufs) * MAX_BUFS);
	if (!bufs)
		return -ENOMEM;
	pdev = make_dev(0, NUMA_NO_NODE);
	if (IS_ERR(pdev))
		goto fail;
	devs[0] = pdev;
	for_each_online_node(n) {
		pdev = make_dev(1 + n, n);
		if (IS_ERR(pdev))
			goto fail;
		devs[1 + n] = pdev;
	}
	dir = debugfs_create_dir("numacma_dma_test", NULL);
	debugfs_create_file("ctl", 0600, dir, NULL, &ctl_fops);
	pr_info("numacma_dma_test: ready, %d node(s)\n", num_online_nodes());
	return 0;
fail:
	destroy();
	return PTR_ERR(pdev);
}

static void __exit ntest_exit(void)
{
	destroy();
}

module_init(ntest_init);
module_exit(ntest_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("dma_alloc_coherent per NUMA node from user space, for numacma's differential tests");
