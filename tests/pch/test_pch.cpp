// The program that owns the unit tests' precompiled header (tests/CMakeLists.txt):
// every tests/unit/*_test.cpp reuses its PCH of gtest, rapidcheck, nlohmann-json
// and the standard headers the tests share. It is built, never run.
int main() { return 0; }
