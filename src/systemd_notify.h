// systemd's notify protocol (Type=notify): READY=1, RELOADING=1, STOPPING=1, STATUS= lines and
// watchdog pings over $NOTIFY_SOCKET. Every call is a no-op when not run by systemd (no
// NOTIFY_SOCKET). The only file that includes libsystemd.
#pragma once

#include <chrono>
#include <string>

namespace rmq2pg {

class SystemdNotifier {
  public:
    // Reads WATCHDOG_USEC (and WATCHDOG_PID) once: the watchdog is on when systemd asked for it.
    SystemdNotifier();

    void ready();
    // RELOADING=1 on SIGHUP; ready() again once the new config is in force (or was refused).
    void reloading();
    void stopping();
    void status(const std::string& text);

    // Sends WATCHDOG=1 when half the watchdog period passed since the last ping, but only while
    // `healthy`: a wedged process stops pinging and systemd restarts it (WatchdogSec=).
    void watchdog(bool healthy, std::chrono::steady_clock::time_point now);
    // How often the main loop must call watchdog() at least; 1 s when the watchdog is off.
    std::chrono::milliseconds tick() const;

  private:
    std::chrono::microseconds watchdog_period_{0};  // 0: no watchdog
    std::chrono::steady_clock::time_point last_ping_{};
};

}  // namespace rmq2pg
