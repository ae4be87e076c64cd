// src/os/daemon.cpp — see daemon.hpp.
#include "os/daemon.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "os/errno_error.hpp"

namespace numacma::os {

namespace {

volatile sig_atomic_t g_stop = 0;
void on_stop(int) { g_stop = 1; }

void close_all_but(const std::vector<int>& keep) {
  std::vector<int> open;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    const int own = ::dirfd(d);
    while (const dirent* e = ::readdir(d)) {
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      const int fd = std::atoi(e->d_name);
      if (fd > 2 && fd != own) open.push_back(fd);
    }
    ::closedir(d);
  } else {
    for (int fd = 3; fd < 1024; ++fd) open.push_back(fd);
  }
  for (int fd : open)
    if (std::find(keep.begin(), keep.end(), fd) == keep.end()) ::close(fd);
}

[[noreturn]] void become_daemon(const std::vector<int>& keep, const std::string& name,
                                const std::function<int()>& fn) {
  ::signal(SIGPIPE, SIG_IGN);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGCHLD}) ::signal(s, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  const int null = ::open("/dev/null", O_RDWR);
  if (null >= 0) {
    for (int fd = 0; fd <= 2; ++fd) ::dup2(null, fd);
    if (null > 2) ::close(null);
  }
  close_all_but(keep);
  if (::chdir("/") != 0) {
  }
  ::prctl(PR_SET_NAME, name.substr(0, 15).c_str(), 0, 0, 0);
  ::_exit(fn());
}

}  // namespace

Status spawn_daemon(const std::vector<int>& keep, const std::string& name, const std::function<int()>& fn) {
  const pid_t mid = ::fork();
  if (mid < 0) return errno_error("fork", errno);
  if (mid == 0) {
    if (::setsid() < 0) ::_exit(1);
    const pid_t pid = ::fork();
    if (pid < 0) ::_exit(1);
    if (pid > 0) ::_exit(0);
    become_daemon(keep, name, fn);
  }
  int st = 0;
  while (::waitpid(mid, &st, 0) < 0)
    if (errno != EINTR) return errno_error("waitpid", errno);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return make_error(Errc::io_error, "could not start a daemon (fork)");
  return {};
}

void catch_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_stop;
  sigemptyset(&sa.sa_mask);
  for (int s : {SIGTERM, SIGINT, SIGHUP}) ::sigaction(s, &sa, nullptr);
}

bool stop_requested() noexcept { return g_stop != 0; }

void raise_fd_limit() noexcept {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &r);
  }
}

std::uint64_t link_count(int fd) noexcept {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return 0;
  return static_cast<std::uint64_t>(st.st_nlink);
}

}  // namespace numacma::os
