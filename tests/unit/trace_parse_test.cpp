// tests/unit/trace_parse_test.cpp — the replay trace reader: every field and
// option, comments and blank lines, and that each bad line is refused with
// "line N: ..." and the bad token.
#include <cstdint>
#include <string>

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include "pool/trace.hpp"

namespace numacma::trace {
namespace {

TraceLine ok(const std::string& s, std::size_t line_no = 1) {
  auto r = parse_trace_line(s, line_no);
  EXPECT_TRUE(r.ok()) << "'" << s << "': " << (r.ok() ? "" : r.error().message);
  return r.ok() ? *r : TraceLine{};
}

/** Asserts the line is refused, its message starts "line N: " and names `token`. */
std::string bad(const std::string& s, const std::string& token, std::size_t line_no = 7) {
  auto r = parse_trace_line(s, line_no);
  EXPECT_FALSE(r.ok()) << "'" << s << "' was accepted";
  if (r.ok()) return "";
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  const std::string& m = r.error().message;
  EXPECT_EQ(m.rfind("line " + std::to_string(line_no) + ": ", 0), 0u) << m;
  EXPECT_NE(m.find(token), std::string::npos) << "message does not name '" << token << "': " << m;
  return m;
}

TEST(TraceParse, BlankAndCommentLines) {
  for (const char* s : {"", "   ", "\t", "# a comment", "   # indented comment", "#alloc a 0 4K",
                        "\r"}) {
    const TraceLine t = ok(s);
    EXPECT_EQ(t.op, TraceOp::none) << "'" << s << "'";
  }
}

TEST(TraceParse, MinimalAlloc) {
  const TraceLine t = ok("alloc q0 2 64K");
  EXPECT_EQ(t.op, TraceOp::alloc);
  EXPECT_EQ(t.id, "q0");
  EXPECT_EQ(t.node, 2);
  EXPECT_EQ(t.size, 64u << 10);
  EXPECT_EQ(t.dma_mask, ~std::uint64_t{0});
  EXPECT_EQ(t.device, "");
  EXPECT_EQ(t.cpu, -1);  // no cpu=: the trace's `cpu` line, else CPU 0 (the replay decides)
}

TEST(TraceParse, CpuOption) {
  // cpu=<N>: the CPU a request is made on; a device with no node gets pages
  // on that CPU's node (docs/semantics.md A3, A7: the kernel's numa_mem_id()).
  TraceLine t = ok("alloc a -1 4K cpu=40");
  EXPECT_EQ(t.cpu, 40);
  EXPECT_EQ(t.node, -1);
  t = ok("alloc a -1 4K device=nic cpu=0 dma_mask=0xffffffff  # any order");
  EXPECT_EQ(t.cpu, 0);
  EXPECT_EQ(t.device, "nic");
  EXPECT_EQ(t.dma_mask, 0xffffffffu);
  EXPECT_EQ(ok("alloc a 2 1M cpu=1048576").cpu, kMaxCpu);  // allowed, if meaningless, for a node
  EXPECT_EQ(ok("alloc a -1 4K cpu=007").cpu, 7);             // decimal, not octal
}

TEST(TraceParse, BadCpu) {
  EXPECT_EQ(bad("alloc q0 -1 4K cpu=x", "'cpu=x'"),
            "line 7: alloc: 'cpu=x': cpu must be a decimal number");
  bad("alloc q0 -1 4K cpu=", "'cpu='");
  bad("alloc q0 -1 4K cpu=-1", "'cpu=-1'");
  bad("alloc q0 -1 4K cpu=+1", "'cpu=+1'");
  bad("alloc q0 -1 4K cpu=0x1", "'cpu=0x1'");
  bad("alloc q0 -1 4K cpu=1.5", "'cpu=1.5'");
  EXPECT_NE(bad("alloc q0 -1 4K cpu=1048577", "'cpu=1048577'").find("out of range 0..1048576"),
            std::string::npos);
  bad("alloc q0 -1 4K cpu=99999999999999999999", "'cpu=99999999999999999999'");
  bad("alloc q0 -1 4K cpu=1 cpu=2", "twice");
  bad("alloc q0 -1 4K CPU=1", "'CPU=1'");
  bad("free q0 cpu=1", "'cpu=1'");
}

TEST(TraceParse, CpuLine) {
  // `cpu <N>`: the CPU of the trace's alloc lines without cpu= (the replay
  // takes it once, before any request; without it, CPU 0).
  TraceLine t = ok("cpu 3");
  EXPECT_EQ(t.op, TraceOp::cpu);
  EXPECT_EQ(t.cpu, 3);
  EXPECT_EQ(ok("  cpu\t1048576   # the largest").cpu, kMaxCpu);
  EXPECT_EQ(bad("cpu", "missing <N>"), "line 7: cpu: missing <N> (cpu <N>: the CPU of the alloc lines without cpu=)");
  EXPECT_EQ(bad("cpu x", "'x'"), "line 7: cpu: 'x' must be a decimal number");
  bad("cpu -1", "'-1'");
  bad("cpu 1048577", "'1048577'");
  bad("cpu 1 2", "unexpected token '2'");
  bad("cpu=1", "unknown op 'cpu=1'");
}

TEST(TraceParse, AllocWithOptionsAnyOrderAndComment) {
  TraceLine t = ok("alloc q1 -1 2M dma_mask=0xffffffff device=nvme0  # 32-bit device");
  EXPECT_EQ(t.node, -1);
  EXPECT_EQ(t.size, 2u << 20);
  EXPECT_EQ(t.dma_mask, 0xffffffffu);
  EXPECT_EQ(t.device, "nvme0");
  t = ok("\talloc  x  1023  4096 device=0000:81:00.0 dma_mask=0XFFFFFFF\r");
  EXPECT_EQ(t.node, 1023);
  EXPECT_EQ(t.size, 4096u);
  EXPECT_EQ(t.dma_mask, 0xfffffffu);
  EXPECT_EQ(t.device, "0000:81:00.0");
}

TEST(TraceParse, SizesUseMemparse) {
  EXPECT_EQ(ok("alloc a 0 1G").size, 1u << 30);
  EXPECT_EQ(ok("alloc a 0 3k").size, 3u << 10);
  EXPECT_EQ(ok("alloc a 0 1T").size, std::uint64_t{1} << 40);
  EXPECT_EQ(ok("alloc a 0 0x2000").size, 0x2000u);
  EXPECT_EQ(ok("alloc a 0 0").size, 0u);  // the pool rejects it (A1), not the reader
  EXPECT_EQ(ok("alloc a 0 18446744073709551615").size, ~std::uint64_t{0});
}

TEST(TraceParse, Free) {
  TraceLine t = ok("free q0");
  EXPECT_EQ(t.op, TraceOp::free);
  EXPECT_EQ(t.id, "q0");
  t = ok("  free   q0#gone");
  EXPECT_EQ(t.op, TraceOp::free);
  EXPECT_EQ(t.id, "q0");
}

TEST(TraceParse, DmaMaskFullWidth) {
  EXPECT_EQ(ok("alloc a 0 4K dma_mask=0xffffffffffffffff").dma_mask, ~std::uint64_t{0});
  EXPECT_EQ(ok("alloc a 0 4K dma_mask=0x0001").dma_mask, 1u);
}

TEST(TraceParse, BadOps) {
  bad("allocate q0 0 4K", "'allocate'");
  bad("ALLOC q0 0 4K", "'ALLOC'");
  bad("q0 0 4K", "'q0'");
  bad("free", "missing <id>");
  bad("free q0 extra", "'extra'");
  bad("free q0 4K", "'4K'");
}

TEST(TraceParse, MissingAllocFields) {
  bad("alloc", "<id>");
  bad("alloc q0", "<node|-1>");
  bad("alloc q0 0", "<size>");
  bad("alloc q0 0 # 4K", "<size>");
}

TEST(TraceParse, BadNode) {
  for (const char* n : {"x", "-2", "1024", "+1", "1.0", "-", "0x1", "99999999999999999999"})
    bad(std::string("alloc q0 ") + n + " 4K", std::string("'") + n + "'");
}

TEST(TraceParse, BadSize) {
  EXPECT_EQ(bad("alloc q0 0 12Q", "'Q'"), "line 7: alloc: size '12Q': unknown suffix 'Q'");
  bad("alloc q0 0 4MB", "'B'");
  bad("alloc q0 0 16E", "'16E'");
  bad("alloc q0 0 18446744073709551616", "'18446744073709551616'");
  bad("alloc q0 0 -4K", "'-4K'");
}

TEST(TraceParse, BadOptions) {
  bad("alloc q0 0 4K dma_mask=0", "'dma_mask=0'");
  bad("alloc q0 0 4K dma_mask=ffff", "'dma_mask=ffff'");
  bad("alloc q0 0 4K dma_mask=0x", "'dma_mask=0x'");
  bad("alloc q0 0 4K dma_mask=0x0", "must not be 0");
  bad("alloc q0 0 4K dma_mask=0x00000", "must not be 0");
  bad("alloc q0 0 4K dma_mask=0xfg", "'g'");
  bad("alloc q0 0 4K dma_mask=0x10000000000000000", "64 bits");
  bad("alloc q0 0 4K dma_mask=", "'dma_mask='");
  bad("alloc q0 0 4K device=", "'device='");
  bad("alloc q0 0 4K dma_mask=0xff dma_mask=0xff", "twice");
  bad("alloc q0 0 4K device=a device=b", "'device=b'");
  bad("alloc q0 0 4K node=1", "'node=1'");
  bad("alloc q0 0 4K 8K", "'8K'");
  bad("alloc q0 0 4K DMA_MASK=0xff", "'DMA_MASK=0xff'");
}

TEST(TraceParse, LineNumberIsTheOneGiven) {
  auto r = parse_trace_line("bogus", 12345);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message.rfind("line 12345: ", 0), 0u) << r.error().message;
}

RC_GTEST_PROP(TraceParseProp, WellFormedAllocRoundTrips, ()) {
  const auto id = *rc::gen::nonEmpty(rc::gen::container<std::string>(
      rc::gen::element('a', 'b', 'z', '0', '9', '_', '-', ':', '.')));
  const int node = *rc::gen::inRange(-1, 1024);
  const auto size = *rc::gen::arbitrary<std::uint64_t>();
  const auto mask = *rc::gen::suchThat<std::uint64_t>([](std::uint64_t m) { return m != 0; });
  const int cpu = *rc::gen::inRange(-1, kMaxCpu + 1);  // -1: no cpu= option
  char hex[32];
  std::snprintf(hex, sizeof hex, "0x%llx", static_cast<unsigned long long>(mask));
  const std::string line = "alloc " + id + " " + std::to_string(node) + " " +
                           std::to_string(size) + " dma_mask=" + hex + " device=d" + id +
                           (cpu >= 0 ? " cpu=" + std::to_string(cpu) : std::string());
  auto r = parse_trace_line(line, 1);
  RC_ASSERT(r.ok());
  RC_ASSERT(r->op == TraceOp::alloc);
  RC_ASSERT(r->id == id);
  RC_ASSERT(r->node == node);
  RC_ASSERT(r->size == size);
  RC_ASSERT(r->dma_mask == mask);
  RC_ASSERT(r->device == "d" + id);
  RC_ASSERT(r->cpu == cpu);
}

RC_GTEST_PROP(TraceParseProp, AnyLineGivesAValueOrALineNumberedError, (std::string s)) {
  auto r = parse_trace_line(s, 3);
  if (!r.ok()) RC_ASSERT(r.error().message.rfind("line 3: ", 0) == 0);
}

}  // namespace
}  // namespace numacma::trace
