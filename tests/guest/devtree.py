"""tests/guest/devtree.py — QEMU's own device tree with NUMA nodes on its
PCIe host bridge (arm64 virt guests booted from a device tree: the bridge
and the SMMUv3 get numa-node-id, which QEMU's virt machine does not write)."""
import os
import struct
import subprocess


def fdt_set_node_prop(blob, node_prefixes, prop, value):
    """The flattened device tree `blob` with a u32 property `prop` = value
    added to every node at depth 1 whose name starts with one of
    node_prefixes (e.g. "pcie@"); returns (new blob, names of those nodes)."""
    be = lambda off: struct.unpack_from(">I", blob, off)[0]
    magic, total, off_struct, off_strings, off_rsv = (be(i * 4) for i in range(5))
    size_strings, size_struct = be(32), be(36)
    if magic != 0xd00dfeed or not off_rsv < off_struct < off_strings:
        raise RuntimeError("not a flattened device tree laid out as libfdt writes it")
    strings = bytearray(blob[off_strings:off_strings + size_strings])
    key = prop.encode() + b"\0"
    nameoff = 0
    while True:
        if strings[nameoff:nameoff + len(key)] == key and (nameoff == 0 or strings[nameoff - 1] == 0):
            break
        nameoff = strings.find(key, nameoff + 1)
        if nameoff < 0:
            nameoff = len(strings)
            strings += key
            break
    st = blob[off_struct:off_struct + size_struct]
    out, pos, depth, hit = bytearray(), 0, 0, []
    pad = lambda n: (n + 3) & ~3
    while pos < len(st):
        tok = struct.unpack_from(">I", st, pos)[0]
        if tok == 1:  # FDT_BEGIN_NODE
            end = st.index(b"\0", pos + 4)
            name = st[pos + 4:end].decode()
            nxt = pos + 4 + pad(end - pos - 4 + 1)
            out += st[pos:nxt]
            depth += 1
            if depth == 2 and any(name.startswith(p) for p in node_prefixes):
                out += struct.pack(">III", 3, 4, nameoff) + struct.pack(">I", value)
                hit.append(name)
            pos = nxt
        elif tok == 3:  # FDT_PROP
            ln = struct.unpack_from(">I", st, pos + 4)[0]
            nxt = pos + 12 + pad(ln)
            out += st[pos:nxt]
            pos = nxt
        else:
            depth -= tok == 2  # FDT_END_NODE
            out += st[pos:pos + 4]
            pos += 4
            if tok == 9:  # FDT_END
                break
    hdr = bytearray(blob[:off_struct])
    new_strings = off_struct + len(out)
    struct.pack_into(">I", hdr, 4, new_strings + len(strings))
    struct.pack_into(">I", hdr, 12, new_strings)
    struct.pack_into(">I", hdr, 32, len(strings))
    struct.pack_into(">I", hdr, 36, len(out))
    return bytes(hdr + out + strings), hit


def with_pci_node(cmd, pci_node, path):
    """QEMU's own device tree for the machine of `cmd` (-M ...,dumpdtb),
    with numa-node-id = pci_node on the PCIe host bridge and the SMMUv3,
    written to `path`; returns (`cmd` booting from it (-dtb path), the names
    of the nodes that got it). Raises RuntimeError saying what went wrong."""
    dump = list(cmd)
    m = dump.index("-M") + 1
    dump[m] += ",dumpdtb=%s.qemu" % path
    p = subprocess.run(dump, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0 or not os.path.exists(path + ".qemu"):
        raise RuntimeError("qemu dumpdtb failed: " + p.stdout.decode(errors="replace"))
    blob, hit = fdt_set_node_prop(open(path + ".qemu", "rb").read(), ("pcie@", "smmuv3@"),
                                  "numa-node-id", pci_node)
    if len(hit) != 2:
        raise RuntimeError("QEMU's device tree: expected one pcie@ and one smmuv3@ node, found %s" % hit)
    with open(path, "wb") as f:
        f.write(blob)
    return list(cmd) + ["-dtb", path], hit
