// What every kernel of rnnlm's native library shares: the one thread that runs oneDNN (and the OpenMP
// loops around it), errors as return codes, and the XLA FFI handlers' types.  Included by each source of
// the library; the inline definitions give the library one worker and one error slot per thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include <unistd.h>

namespace rnnlm {

inline thread_local std::string last_error;

// Every oneDNN call runs on one thread of ours, whichever thread asks (Python's, or one of XLA's workers),
// so oneDNN has one OpenMP team.  libgomp shortens every team's spin-wait once it manages more threads
// than there are CPUs; with XLA's workers each starting a team, the kernel ran 40% slower (2 vCPUs).  The
// thread ends after a second without work, so its team does not outlive the training that needs it.
class Worker {
 public:
  void run(const std::function<void()>& job) {
    if (on_worker_) {  // a job that calls the library (a step run on the worker): run it here
      job();
      return;
    }
    std::lock_guard<std::mutex> one_at_a_time(submit_);
    std::unique_lock<std::mutex> lock(mu_);
    job_ = &job;
    if (!alive_) {
      alive_ = true;
      std::thread([this] { loop(); }).detach();
    }
    cv_.notify_all();
    cv_.wait(lock, [this] { return job_ == nullptr; });
  }

 private:
  void loop() {
    on_worker_ = true;
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      if (!cv_.wait_for(lock, std::chrono::seconds(1), [this] { return job_ != nullptr; })) {
        alive_ = false;  // idle: end the thread (and with it its OpenMP team)
        return;
      }
      const std::function<void()>* job = job_;
      lock.unlock();
      (*job)();
      lock.lock();
      job_ = nullptr;
      cv_.notify_all();
    }
  }
  std::mutex submit_, mu_;
  std::condition_variable cv_;
  const std::function<void()>* job_ = nullptr;
  bool alive_ = false;
  static inline thread_local bool on_worker_ = false;
};

inline Worker& worker() {
  // Never destroyed: a detached thread may still wait on it at exit.  A forked child has no thread of
  // its parent's, so it makes its own.
  static std::mutex mu;
  static Worker* w = nullptr;
  static pid_t owner = 0;
  std::lock_guard<std::mutex> lock(mu);
  if (w == nullptr || owner != getpid()) {
    w = new Worker;
    owner = getpid();
  }
  return *w;
}

// Runs body on the worker: 0, or 1 with the message for rnnlm_error() (no C++ exception crosses into
// Python or XLA).
template <class Body>
int guarded(Body body) {
  std::string error;
  worker().run([&] {
    try {
      body();
    } catch (const std::exception& e) {
      error = e.what();
      if (error.empty()) error = "unknown error";
    }
  });
  if (error.empty()) return 0;
  last_error = error;
  return 1;
}

}  // namespace rnnlm

#ifdef RNNLM_XLA_FFI
// What the XLA FFI handlers share: float32 buffers, and a return code as XLA's error.
#include "xla/ffi/api/ffi.h"

namespace rnnlm::xla_ffi {
namespace ffi = xla::ffi;
using In = ffi::Buffer<ffi::F32>;
using Out = ffi::ResultBuffer<ffi::F32>;

inline ffi::Error ffi_status(int rc) {
  return rc ? ffi::Error(ffi::ErrorCode::kInternal, last_error) : ffi::Error::Success();
}
}  // namespace rnnlm::xla_ffi
#endif
