// SIGINT and SIGTERM ask a long job (a conversion, an imatrix run, split, merge) to stop at its next step: the
// library sees the flag through its `cancel` pointer, removes its temporary files and returns `interrupted` (exit
// 130). A second signal while stopping has the default effect.
#pragma once

#include <atomic>
#include <csignal>

namespace quant::cli {

inline std::atomic<bool> g_interrupted{false};

extern "C" inline void on_interrupt(int) { g_interrupted.store(true); }

// Installs the handlers and returns the flag to hand to the library.
inline const std::atomic<bool>* install_interrupt_handlers() {
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  action.sa_flags = SA_RESETHAND;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  return &g_interrupted;
}

}  // namespace quant::cli
