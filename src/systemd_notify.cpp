// systemd notifications; see systemd_notify.h.
#include "systemd_notify.h"

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <algorithm>
#include <cstdint>
#include <ctime>
#include <string>

namespace rmq2pg {

namespace {

// A failed notification is logged, never fatal: systemd then treats us as it would a daemon
// that never notified (start timeout, watchdog), which is the right outcome.
void notify(const std::string& message) {
    int result = sd_notify(/*unset_environment=*/0, message.c_str());
    if (result < 0)
        spdlog::warn("systemd: sd_notify(\"{}\") failed: {}", message, result);
}

}  // namespace

SystemdNotifier::SystemdNotifier() {
    std::uint64_t usec = 0;
    if (sd_watchdog_enabled(/*unset_environment=*/0, &usec) > 0 && usec > 0) {
        watchdog_period_ = std::chrono::microseconds(usec);
        spdlog::info("systemd: watchdog every {} ms (WatchdogSec {} ms)", usec / 2000, usec / 1000);
    }
}

void SystemdNotifier::ready() {
    notify("READY=1");
}

void SystemdNotifier::reloading() {
    // MONOTONIC_USEC lets systemd (253+) tell this reload from an earlier one.
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    notify("RELOADING=1\nMONOTONIC_USEC=" +
           std::to_string(static_cast<std::uint64_t>(now.tv_sec) * 1000000 +
                          static_cast<std::uint64_t>(now.tv_nsec) / 1000));
}

void SystemdNotifier::stopping() {
    notify("STOPPING=1");
}

void SystemdNotifier::status(const std::string& text) {
    notify("STATUS=" + text);
}

void SystemdNotifier::watchdog(bool healthy, std::chrono::steady_clock::time_point now) {
    if (watchdog_period_.count() == 0 || !healthy)
        return;
    if (now - last_ping_ < watchdog_period_ / 2)
        return;
    notify("WATCHDOG=1");
    last_ping_ = now;
}

std::chrono::milliseconds SystemdNotifier::tick() const {
    std::chrono::milliseconds one_second(1000);
    if (watchdog_period_.count() == 0)
        return one_second;
    // A quarter period: a ping is then never later than half the period plus a quarter.
    auto quarter = std::chrono::duration_cast<std::chrono::milliseconds>(watchdog_period_ / 4);
    return std::clamp(quarter, std::chrono::milliseconds(10), one_second);
}

}  // namespace rmq2pg
