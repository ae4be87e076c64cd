// tests/unit/second_user.hpp — a second local user (and a group) for the
// tests of shared pools' permissions, made once (root only), and a way to run
// code as that user in a child process.
#pragma once

#include <grp.h>
#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace numacma::testing {

inline constexpr const char* kSecondUser = "numacma-t2";
inline constexpr const char* kSecondGroup = "numacma-tg";

struct SecondUser {
  bool ok = false;
  std::string why;
  uid_t uid = 0;
  gid_t own_gid = 0, group_gid = 0;
  SecondUser() {
    const auto run = [](const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0; };
    if (::geteuid() != 0) {
      why = "needs root (creates a user)";
      return;
    }
    if (!run("command -v useradd") || !run("command -v groupadd")) {
      why = "useradd/groupadd not installed (passwd package)";
      return;
    }
    if (::getgrnam(kSecondGroup) == nullptr && !run(std::string("groupadd ") + kSecondGroup)) {
      why = "groupadd failed";
      return;
    }
    if (::getpwnam(kSecondUser) == nullptr && !run(std::string("useradd -M -N -s /usr/sbin/nologin ") + kSecondUser)) {
      why = "useradd failed";
      return;
    }
    const passwd* pw = ::getpwnam(kSecondUser);
    const group* gr = ::getgrnam(kSecondGroup);
    if (pw == nullptr || gr == nullptr) {
      why = "user or group not found after creating them";
      return;
    }
    uid = pw->pw_uid;
    own_gid = pw->pw_gid;
    group_gid = gr->gr_gid;
    ok = true;
  }
};

/** Runs fn() in a child as the second user (in its group when with_group);
 *  the child's exit code (fn's value; 20: could not switch; 100+: a signal). */
template <typename Fn>
int as_second_user(const SecondUser& u, bool with_group, Fn fn) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    const gid_t groups[1] = {u.group_gid};
    if (::setgroups(with_group ? 1 : 0, groups) != 0 || ::setgid(u.own_gid) != 0 || ::setuid(u.uid) != 0)
      ::_exit(20);
    ::_exit(fn());
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
}

}  // namespace numacma::testing
