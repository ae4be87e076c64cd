// Runs a libFuzzer target without libFuzzer: every file of the corpus
// directories given, then random byte-level mutations of them for a bounded
// time (--seconds N, default 3). Lets any compiler smoke-test the fuzz
// targets under ctest; the real coverage-guided runs use clang's libFuzzer.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main(int argc, char** argv) {
  double seconds = 3;
  std::vector<std::string> inputs;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
      continue;
    }
    std::filesystem::path p(argv[i]);
    if (std::filesystem::is_directory(p)) {
      for (const auto& e : std::filesystem::directory_iterator(p)) {
        std::ifstream f(e.path(), std::ios::binary);
        inputs.emplace_back(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
      }
    } else if (std::filesystem::exists(p)) {
      std::ifstream f(p, std::ios::binary);
      inputs.emplace_back(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    }
  }
  if (inputs.empty()) inputs.emplace_back("");
  for (const auto& s : inputs)
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
  std::mt19937_64 rng(12345);
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  std::size_t runs = inputs.size();
  while (std::chrono::steady_clock::now() < end) {
    std::string s = inputs[rng() % inputs.size()];
    const int edits = 1 + static_cast<int>(rng() % 8);
    for (int e = 0; e < edits; ++e) {
      const auto pos = s.empty() ? 0 : rng() % (s.size() + 1);
      switch (rng() % 4) {
        case 0: s.insert(s.begin() + static_cast<long>(pos), static_cast<char>(rng())); break;
        case 1: if (pos < s.size()) s.erase(pos, 1); break;
        case 2: if (pos < s.size()) s[pos] = static_cast<char>(rng()); break;
        default: if (pos < s.size()) s[pos] = "0123456789:,-=@xKMGkmg \n#"[rng() % 25]; break;
      }
    }
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
    ++runs;
  }
  std::printf("smoke: %zu inputs run, no crash\n", runs);
  return 0;
}
