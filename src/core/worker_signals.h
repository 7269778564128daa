// Threads the library starts never take the signals a user or a supervisor sends to stop a process (SIGINT,
// SIGTERM, SIGHUP, SIGQUIT): those go to the caller's thread, the one that checks the `cancel` flag its handler
// sets. Were a worker to take one, its handler could run after the caller had already passed its last check
// (the worker waits to be scheduled; the caller is running), and an interrupted run would finish and place its
// outputs. Start every library thread inside a WorkerSignals scope: a new thread inherits the mask blocked here,
// and the creating thread's own mask is restored when the scope ends (a signal that came meanwhile is delivered
// then).
#pragma once

#include <pthread.h>

#include <csignal>

namespace quant {

class WorkerSignals {
 public:
  WorkerSignals() {
    sigset_t blocked;
    sigemptyset(&blocked);
    for (const int signal : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaddset(&blocked, signal);
    pthread_sigmask(SIG_BLOCK, &blocked, &saved_);
  }
  ~WorkerSignals() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
  WorkerSignals(const WorkerSignals&) = delete;
  WorkerSignals& operator=(const WorkerSignals&) = delete;

 private:
  sigset_t saved_;
};

}  // namespace quant
