// Threads inside one page's kernel, and over the pages of a batch (parallel_for in the bindings).
//
// One process-wide pool of helper threads (std::thread) shares work with the caller: a phase is cut
// into parts (up to kPartsPerThread per thread, contiguous stretches whose results the callers
// concatenate in part order), the caller claims parts from an atomic counter and runs them itself,
// and helpers woken from their sleep claim parts only while some remain. At the end the caller waits
// only for parts that a helper has claimed and is running, never for a helper that has not started:
// on a loaded machine (one core busy elsewhere) a late helper costs nothing, the caller simply runs
// every part. Which thread ran a part never changes a result (a part's output is indexed by part).
//
// One job at a time: a caller who finds the pool busy (another Python thread's call, or a phase
// inside a batch's page) runs its parts itself, so concurrent callers never oversubscribe the cores.
// Tiny phases run inline (phase_threads decides from the work size).
//
// Fork: a forked child (DataLoader workers, multiprocessing) has none of the parent's helpers; the
// pool is recreated lazily there, and its default count is 1 (PyTorch's practice in DataLoader
// workers) unless the count was set with dwd_fast.set_num_threads. Helpers that cannot be created
// (a thread limit) are simply not used: the work runs on fewer threads.
#pragma once

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace dwd {
namespace cpu {

// Work (in pixels or bytes touched) below which a phase stays on one thread, and the thread count
// (0: the default, see default_threads): set by dwd_fast.set_num_threads, and by the tests
// (_cpu.page_threads), which run small inputs on several threads to check the seams.
inline std::atomic<std::int64_t> g_parallel_min_work{std::int64_t(1) << 16};
inline std::atomic<int> g_threads{0};

// The largest count accepted (dwd_fast.set_num_threads refuses more; the environment is clamped).
constexpr int kMaxThreads = 1024;
// Parts per thread of a splittable phase: a helper that arrives late leaves its share to the others.
constexpr int kPartsPerThread = 4;

namespace detail {

inline std::atomic<bool> g_forked_child{false};
// Tests: the pool's thread creation fails (as under a thread or memory limit) once this many helpers
// exist; -1: never (the default).
inline std::atomic<int> g_spawn_limit{-1};

// DWD_FAST_NUM_THREADS, else OMP_NUM_THREADS (as before the pool), else the CPUs this process may run on.
inline int environment_threads() {
  for (const char* name : {"DWD_FAST_NUM_THREADS", "OMP_NUM_THREADS"}) {
    const char* v = std::getenv(name);
    if (v && *v) {
      char* end = nullptr;
      const long n = std::strtol(v, &end, 10);
      if (end != v && n >= 1) return static_cast<int>(std::min<long>(n, kMaxThreads));
    }
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n >= 1) return std::min(n, kMaxThreads);
  }
  const unsigned h = std::thread::hardware_concurrency();
  return h >= 1 ? static_cast<int>(std::min<unsigned>(h, kMaxThreads)) : 1;
}

inline int default_threads() {
  if (g_forked_child.load(std::memory_order_relaxed)) return 1;
  static const int n = environment_threads();
  return n;
}

// Whether this thread is running a part of the pool's job (a helper, or the caller that owns the
// job): phases it meets run inline. A pthread key, not a C++ thread_local: the extension is loaded
// with dlopen, where glibc allocates a thread_local lazily at its first use in each thread and aborts
// the process if that allocation fails (a memory limit); a low-numbered key lives in the thread's
// descriptor and setting it allocates nothing.
inline pthread_key_t job_key() {
  static const pthread_key_t key = [] {
    pthread_key_t k;
    pthread_key_create(&k, nullptr);
    return k;
  }();
  return key;
}
inline bool in_job() { return pthread_getspecific(job_key()) != nullptr; }
inline void set_in_job(bool on) {
  static char marker;
  pthread_setspecific(job_key(), on ? &marker : nullptr);
}

class Pool {
 public:
  // Runs body(p) for every p in [0, parts) on the caller and up to threads - 1 helpers.
  // Exceptions: the one of the lowest part is rethrown on the caller's thread.
  template <class F>
  void run(std::int64_t parts, int threads, F& body) {
    if (parts <= 0) return;
    std::vector<std::exception_ptr> err;
    auto guarded = [&](std::int64_t p) {
      try {
        body(p);
      } catch (...) {
        err[static_cast<std::size_t>(p)] = std::current_exception();
      }
    };
    int helpers = static_cast<int>(std::min<std::int64_t>(threads, parts)) - 1;
    if (helpers > 0 && g_parallel_min_work.load(std::memory_order_relaxed) > 0)  // 0: the tests split every phase
      helpers = std::min(helpers, idle_cpus());
    bool expected = false;
    if (helpers <= 0 || in_job() || now_ns() < skip_until_ns_.load(std::memory_order_relaxed) ||
        !busy_.compare_exchange_strong(expected, true, std::memory_order_acquire)) {
      for (std::int64_t p = 0; p < parts; ++p) body(p);  // inline: the first error stops, as one thread would
      return;
    }
    err.resize(static_cast<std::size_t>(parts));
    const int woken = grow(helpers);
    struct Reset {
      Pool* pool;
      ~Reset() {
        set_in_job(false);
        pool->busy_.store(false, std::memory_order_release);
      }
    } reset{this};
    set_in_job(true);
    if (woken <= 0) {
      for (std::int64_t p = 0; p < parts; ++p) guarded(p);
    } else {
      call_ = [](void* ctx, std::int64_t p) { (*static_cast<decltype(guarded)*>(ctx))(p); };
      ctx_ = &guarded;
      done_.store(0, std::memory_order_relaxed);
      gen_ = (gen_ + 1) & kGenMask;
      word_.store(gen_ << 40 | static_cast<std::uint64_t>(parts) << 20, std::memory_order_release);
      {
        std::lock_guard<std::mutex> lk(m_);
        pending_ = woken;
      }
      if (woken == 1)
        cv_.notify_one();
      else
        cv_.notify_all();
      const std::int64_t t0 = now_ns();
      std::int64_t mine = 0;
      for (std::int64_t p; (p = claim()) >= 0; ++mine) guarded(p);
      {
        std::lock_guard<std::mutex> lk(m_);
        pending_ = 0;  // helpers not yet awake have nothing left to do
      }
      const std::int64_t t1 = now_ns();
      // Only parts already claimed by running helpers remain.
      bool waited = false;
      for (int spin = 0; done_.load(std::memory_order_acquire) + mine < parts; ++spin) {
        waited = true;
        if (spin < 256)
          pause();
        else
          std::this_thread::yield();
      }
      if (mine < parts) adapt(t0, t1, waited ? now_ns() : t1, mine, parts);
    }
    for (const std::exception_ptr& e : err)
      if (e) std::rethrow_exception(e);
  }

  // Whether a job started now would wake helpers: no back-off running and (unless the tests split
  // every phase) an idle CPU. Phases that would run inline anyway are not cut into parts.
  bool may_help() {
    if (now_ns() < skip_until_ns_.load(std::memory_order_relaxed)) return false;
    return g_parallel_min_work.load(std::memory_order_relaxed) <= 0 || idle_cpus() > 0;
  }

  // Helper threads running (the pool's thread count is this + 1).
  int helpers() const { return n_threads_.load(std::memory_order_relaxed); }

  static Pool& get() {
    Pool* p = instance().load(std::memory_order_acquire);
    if (p) return *p;
    static std::once_flag atfork;
    std::call_once(atfork, [] { pthread_atfork(nullptr, nullptr, &Pool::on_fork_child); });
    Pool* fresh = new Pool;
    if (!instance().compare_exchange_strong(p, fresh, std::memory_order_acq_rel)) {
      delete fresh;
      return *p;
    }
    return *fresh;
  }

 private:
  static constexpr std::uint64_t kMask20 = (std::uint64_t(1) << 20) - 1;
  static constexpr std::uint64_t kGenMask = (std::uint64_t(1) << 24) - 1;

 public:
  static constexpr std::int64_t kMaxParts = static_cast<std::int64_t>(kMask20);

 private:
  Pool() = default;
  // Helpers are never joined: the pool lives as long as the process (a forked child's copy is
  // abandoned, its threads do not exist there).
  ~Pool() = default;

  static std::atomic<Pool*>& instance() {
    static std::atomic<Pool*> p{nullptr};
    return p;
  }

  static void on_fork_child() {
    // The parent's helpers do not exist here and its locks may be held: a new pool on first use.
    instance().store(nullptr, std::memory_order_relaxed);
    g_forked_child.store(true, std::memory_order_relaxed);
    set_in_job(false);
  }

  static std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

  // Helpers took parts of the job. If the caller then waited for a helper longer than doing those
  // parts itself would have taken (the helper was preempted: other processes compete for the cores),
  // the next jobs run inline for a while: the back-off doubles at each such job (1 ms up to 1 s) and
  // shrinks by 1/32 at each job whose helpers were in time, so it grows while more than ~4% of the
  // jobs are delayed, and vanishes on a quiet machine.
  void adapt(std::int64_t t0, std::int64_t t1, std::int64_t t2, std::int64_t mine, std::int64_t parts) {
    const std::int64_t own = t1 - t0;  // the caller's parts (and claiming)
    const std::int64_t alone = mine > 0 ? own / mine * parts : own;  // its estimate of doing all of them
    if (t2 - t0 > alone + 20000) {
      backoff_ns_ = std::min<std::int64_t>(std::max<std::int64_t>(backoff_ns_ * 2, 1000000), 1000000000);
      skip_until_ns_.store(t2 + backoff_ns_, std::memory_order_relaxed);
    } else {
      backoff_ns_ -= backoff_ns_ / 32;
      if (backoff_ns_ < 100000) backoff_ns_ = 0;
    }
  }

  // CPUs idle besides the caller's: the online CPUs minus the tasks running or waiting to run
  // machine-wide (/proc/loadavg's instantaneous count, the caller among them), read at most every 4 ms.
  // A helper woken on a saturated machine only competes with the caller for a time slice.
  int idle_cpus() {
    const std::int64_t now = now_ns();
    if (now - idle_at_ns_.load(std::memory_order_relaxed) < 4000000) return idle_.load(std::memory_order_relaxed);
    idle_at_ns_.store(now, std::memory_order_relaxed);
    int idle = kMaxThreads;
    const int fd = ::open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      char buf[128];
      const ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
      ::close(fd);
      if (n > 0) {
        buf[n] = 0;
        // "0.50 0.40 0.30 R/T last_pid": R running or runnable
        const char* p = buf;
        for (int field = 0; field < 3 && p; ++field) {
          p = std::strchr(p, ' ');
          if (p) ++p;
        }
        if (p) {
          const long running = std::strtol(p, nullptr, 10);
          if (running >= 1) idle = std::max(0, get_nprocs() - static_cast<int>(running));
        }
      }
    }
    idle_.store(idle, std::memory_order_relaxed);
    return idle;
  }

  static void pause() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }

  // Starts helpers up to `want` (called by the job's owner only); returns how many are available.
  int grow(int want) {
    want = std::min(want, kMaxThreads - 1);
    int have = n_threads_.load(std::memory_order_relaxed);
    while (have < want && !spawn_failed_) {
      try {
        const int limit = g_spawn_limit.load(std::memory_order_relaxed);
        if (limit >= 0 && have >= limit) throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again));
        std::thread(&Pool::helper_loop, this).detach();
      } catch (...) {
        spawn_failed_ = true;  // a thread limit: use the helpers there are
        break;
      }
      n_threads_.store(++have, std::memory_order_relaxed);
    }
    return std::min(have, want);
  }

  // The next unclaimed part of the current job, or -1.
  std::int64_t claim() {
    std::uint64_t w = word_.load(std::memory_order_acquire);
    for (;;) {
      const std::uint64_t total = (w >> 20) & kMask20, next = w & kMask20;
      if (next >= total) return -1;
      if (word_.compare_exchange_weak(w, w + 1, std::memory_order_acq_rel, std::memory_order_acquire))
        return static_cast<std::int64_t>(next);
    }
  }

  void helper_loop() {
    std::unique_lock<std::mutex> lk(m_);
    for (;;) {
      cv_.wait(lk, [&] { return pending_ > 0; });
      --pending_;
      lk.unlock();
      set_in_job(true);
      for (std::int64_t p; (p = claim()) >= 0;) {
        // The job cannot end (nor its slot be reused) before this part is counted done, so the
        // function and context read here are the claimed job's.
        call_(ctx_, p);
        done_.fetch_add(1, std::memory_order_acq_rel);
      }
      set_in_job(false);
      lk.lock();
    }
  }

  // The current job: word_ = generation (24 bits) | parts (20 bits) | next unclaimed part (20 bits).
  std::atomic<std::uint64_t> word_{0};
  std::atomic<std::int64_t> done_{0};
  void (*call_)(void*, std::int64_t) = nullptr;
  void* ctx_ = nullptr;
  std::uint64_t gen_ = 0;
  std::atomic<bool> busy_{false};
  std::atomic<std::int64_t> skip_until_ns_{0};  // jobs run inline before this time (see adapt)
  std::int64_t backoff_ns_ = 0;                  // owner only
  std::atomic<std::int64_t> idle_at_ns_{-(std::int64_t(1) << 62)};
  std::atomic<int> idle_{kMaxThreads};

  std::mutex m_;
  std::condition_variable cv_;
  int pending_ = 0;  // wake-ups not yet taken (guarded by m_)
  std::atomic<int> n_threads_{0};
  bool spawn_failed_ = false;
};

}  // namespace detail

// The threads the CPU kernels use: dwd_fast.set_num_threads's count, else the default
// (DWD_FAST_NUM_THREADS, OMP_NUM_THREADS, or the CPUs this process may run on; 1 in a forked child).
inline int configured_threads() {
  const int set = g_threads.load(std::memory_order_relaxed);
  return set > 0 ? std::min(set, kMaxThreads) : detail::default_threads();
}

// The pool's threads: the caller's and its helpers that exist (fewer than configured when the
// system refused to create some, or before the first parallel phase).
inline int pool_threads() { return detail::Pool::get().helpers() + 1; }

// How many parts (1 .. parts) a phase of `work` units, divisible in at most `parts` pieces, is cut
// into: 1 on a thread already running pool work (a batch's page), for small work, or on one thread;
// else up to kPartsPerThread per thread that the work warrants (one per g_parallel_min_work units).
inline int phase_threads(std::int64_t work, std::int64_t parts) {
  const int threads = configured_threads();
  if (threads <= 1 || parts <= 1 || detail::in_job()) return 1;
  const std::int64_t min_work = g_parallel_min_work.load(std::memory_order_relaxed);
  if (work < min_work) return 1;
  const std::int64_t by_work = min_work > 0 ? std::max<std::int64_t>(1, work / min_work) : threads;
  const std::int64_t t = std::min<std::int64_t>(threads, by_work);
  if (t <= 1 || !detail::Pool::get().may_help()) return 1;
  return static_cast<int>(std::min<std::int64_t>(parts, t * kPartsPerThread));
}

// Runs body(t) for every part t in [0, n) on the pool (the caller's thread among them). If bodies
// throw, the exception of the lowest t is rethrown on the caller's thread: when each body walks a
// stretch of work in order and stops at its first error, that is the error one thread walking all of
// it would have met first.
template <class F>
void on_threads(int n, F&& body) {
  if (n <= 1) {
    if (n == 1) body(0);
    return;
  }
  auto part = [&](std::int64_t p) { body(static_cast<int>(p)); };
  detail::Pool::get().run(n, configured_threads(), part);
}

// Runs body(i) for i in [0, n) on up to `threads` threads of the pool (0: configured_threads()),
// one item per part (contiguous ranges when n is beyond the pool's part limit). The exception of the
// lowest i is rethrown. Used for a batch's pages and the loss kernels' units.
template <class F>
void parallel_items(std::int64_t n, int threads, F&& body) {
  if (n <= 0) return;
  if (threads <= 0) threads = configured_threads();
  threads = std::min(threads, kMaxThreads);
  if (n == 1 || threads <= 1 || detail::in_job()) {
    for (std::int64_t i = 0; i < n; ++i) body(i);
    return;
  }
  const std::int64_t parts = std::min<std::int64_t>(n, detail::Pool::kMaxParts);
  auto part = [&](std::int64_t p) {
    const std::int64_t i0 = n / parts * p + std::min<std::int64_t>(p, n % parts);
    const std::int64_t i1 = n / parts * (p + 1) + std::min<std::int64_t>(p + 1, n % parts);
    for (std::int64_t i = i0; i < i1; ++i) body(i);
  };
  detail::Pool::get().run(parts, threads, part);
}

// The t-th of n contiguous, near-equal parts of [0, total).
inline std::int64_t part_begin(std::int64_t total, int t, int n) {
  return total / n * t + std::min<std::int64_t>(t, total % n);
}

// Splits [0, total) into parts of near-equal weight: boundary t (0 <= t <= n) is the first index
// whose prefix weight reaches t/n of the whole. weight(i) >= 0; cut(t) receives the boundaries.
template <class Weight, class Cut>
void weighted_parts(std::int64_t total, int n, Weight&& weight, Cut&& cut) {
  double sum = 0;
  for (std::int64_t i = 0; i < total; ++i) sum += static_cast<double>(weight(i));
  cut(0, 0);
  double acc = 0;
  int t = 1;
  for (std::int64_t i = 0; i < total && t < n; ++i) {
    while (t < n && acc >= sum * t / n) cut(t++, i);
    acc += static_cast<double>(weight(i));
  }
  while (t < n) cut(t++, total);
  cut(n, total);
}

}  // namespace cpu
}  // namespace dwd
