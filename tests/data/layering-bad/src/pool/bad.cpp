#include "os/os.hpp"  // pool includes os: not in its line, and a system call
#include <unistd.h>
