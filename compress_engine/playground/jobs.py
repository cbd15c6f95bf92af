"""Training jobs: one bounded worker pool per process, so concurrent fine-tunes queue instead of thrashing.

Thirty students on one 2-core server may each press "Fine-tune". Run side by side, thirty training
loops would share two cores: every one of them slow, each slider move stuck behind them. So every
training run of the dashboard goes through this pool: a fixed number of worker threads take jobs in
the order they came; the rest wait in line and each session shows its place in it.

    from compress_engine.playground import jobs
    job = jobs.pool().submit(key, fn)   # fn(progress) -> value; progress(step, total, loss, acc) -> bool
    job = jobs.pool().submit(key, fn, who=sid, alive=lambda: connected(sid))  # a session's, gone once not alive
    job = jobs.pool().join(key)         # the job of `key` nobody is still there for, joined (never started), or None
    job.ahead()                         # jobs running or waiting before it: 0 once it runs, None once finished
    job.position()                      # 0 running, k = k-th in line, None once finished
    job.progress, job.losses            # the last (step, total, loss, acc), [(step, loss), ...]
    job.cancel()                        # leaves the line, or stops at the next progress report
    job.others()                        # how many other live submitters still want it
    job.wait(0.2); job.state            # "queued" | "running" | "done" | "failed" | "cancelled"
    job.result()                        # fn's value (raises job.error if it failed, Cancelled if cancelled)
    with jobs.on_threads(n): ...        # inside fn: a part of the job on n torch threads instead of the job's

Why it is built this way:
- Deduplicated by key. A key is what the run produces (model weights + recipe + data): a second
  session asking for the same thing while it is queued or running joins that job (its progress,
  its result) instead of training it again.
- Cancel is per submitter. Every submit() of a key counts one submitter, and job.cancel() withdraws
  the caller's own (`who`: a session's id): the job leaves the queue, or stops at the engine's next
  progress report (fn passes `progress` to ce.compress, which raises ce.Stopped when it returns
  False), once nobody who asked for it still wants it. One student pressing Cancel does not stop
  another's run. A caller with no submission of its own withdraws one made with no `who`, and a
  caller with no `who` at all (a script, outside any session) withdraws one, as before sessions.
- A submitter that is gone stops counting. A closed browser tab never presses Cancel, and its run
  would hold the worker (on 2 cores, the only one) for everyone. So each submitter may give
  `alive`, a callable -> bool (None: always alive); the pool drops those whose alive() is False
  when a worker is about to start their job (one left with nobody is skipped, "cancelled") and,
  while it runs, at its progress reports (at most every ALIVE_EVERY s): a running job left with
  nobody stops as cancel() stops it. The pool only calls alive(): what "gone" means (a session
  disconnected for some seconds) is the caller's.
- whoami: the dashboard sets it to a callable giving (who, alive) of the calling thread's session,
  or None; submit(), cancel() and others() called without `who` ask it, so every page's submit()
  is its session's without each page passing it.
- An error belongs to its job. Whatever fn raises is kept as job.error (state "failed"); the
  worker goes on with the next job, and nothing is raised into any other job or thread.
- Torch threads per job. torch.set_num_threads is not one global switch: PyTorch keeps the count
  per thread (OpenMP's own setting) plus a process-wide default that each *new* thread copies the
  first time it runs an op. Streamlit runs every page rerun in a new thread, so a worker that just
  called set_num_threads(1) would quietly hand 1 thread to every later page run. Each worker
  therefore sets its own count at the start of each job, pins it (a get_num_threads() call makes
  that thread keep it), and puts the process default back from a short helper thread. Measured
  here: the job runs on exactly its threads, and page runs started meanwhile keep the default.
- Defaults: max(1, cores // 2) workers, and half the cores for training split between them
  (max(1, (cores // 2) // workers) threads each): on 2 cores one job at a time on one thread, and
  the other core answers the sliders of everyone else. Set COMPRESS_TRAIN_WORKERS and
  COMPRESS_TRAIN_THREADS (or pass workers= / threads= to Pool) to change them.
- Spare cores are used. A core kept for sliders nobody moves is wasted: LeNet-5's fine-tuning job took
  15.7 s on one thread, 8.2 on two (bench/training_pace.py). The dashboard sets `spare`, a callable ->
  bool saying whether no page run is computing now; before each training step (and evaluation batch) a
  job then runs on the faster of its own count and the page runs' threads (split between the jobs
  running) while spare() is True, and on its own count again from the next step once a page run
  computes. A job given threads= at submit, and a part of a job inside on_threads, keep their count.
  spare None (a script's pool): jobs keep their threads.
- Threads, not processes: a job reads the model, data and cached logits the server already holds
  (no copy of a 200 MB dataset per worker, nothing pickled), and torch releases the GIL while it
  computes. Workers are daemon threads that start with the first job.

No streamlit here: pages draw from job.ahead() / job.progress; the pool knows nothing of pages.
"""

import collections
import contextlib
import os
import statistics
import threading
import time

# phase: what the steps count when a job has several parts (e.g. "setting" while it scans, then "step"); None: steps
# of the one training run. began: time.monotonic() when that phase (or the job) reported its first step, and first:
# that step. The pace is of the steps after it (the first one's time is not in began; dividing by every step made a
# bar after one step of 235 say "about 1 s left" where 7 s were), and it is not confused by the part's setting up.
Progress = collections.namedtuple("Progress", "step total loss acc phase began first", defaults=(None, None, None))

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)
MAX_LOSSES = 2000  # loss points kept per job (one a report: every 50 steps, or every second of a slow run); older ones are thinned
ALIVE_EVERY = 1.0  # s: a running job asks its submitters' alive() at most this often (at its progress reports)

whoami = None  # () -> (who, alive) or None: the calling thread's submitter when submit/cancel/others get no `who`
# (who, alive) -> bool: whether a submitter is there now (a browser tab connected to its session), not merely alive
# (within its grace after it went: a network blip may bring it back); None: its alive(). others() counts only those
# there, a Cancel leaves none that is not there waiting, and join() takes over a job with nobody there
present = None
# () -> bool: whether the cores page runs compute on are free now (no page run computing); set by the dashboard.
# None: never (jobs keep their threads)
spare = None


def _caller(who, alive):
    """(who, alive) as given, else whoami()'s (for who=None), else (None, alive)."""
    if who is None and whoami is not None:
        me = whoami()
        if me is not None:
            return me[0], alive if alive is not None else me[1]
    return who, alive


def _alive(alive):
    """alive() of a submission; None, or one that raises (it is not the job's to fail on), counts as alive."""
    try:
        return alive is None or bool(alive())
    except Exception:  # noqa: BLE001
        return True


def _there(who, alive):
    """Whether a submission's submitter is there now (`present`); a script's (no `who`), or with no hook, alive()."""
    if who is None or present is None:
        return _alive(alive)
    try:
        return bool(present(who, alive))
    except Exception:  # noqa: BLE001
        return True


class Cancelled(Exception):
    """job.result() of a job that was cancelled (everyone who asked for it cancelled it)."""


def default_workers(cores=None):
    env = os.environ.get("COMPRESS_TRAIN_WORKERS")
    if env:
        return max(1, int(env))
    return max(1, (cores or os.cpu_count() or 1) // 2)


def default_threads(workers, cores=None):
    env = os.environ.get("COMPRESS_TRAIN_THREADS")
    if env:
        return max(1, int(env))
    return max(1, ((cores or os.cpu_count() or 1) // 2) // workers)


class Job:
    """One training run in the pool: its state, place in line, latest progress and loss curve, result.

    Made by Pool.submit(); read from any thread. `fn` runs on a worker thread."""

    def __init__(self, pool, key, fn, threads=None):
        self.key, self.fn, self._pool = key, fn, pool
        self.state = QUEUED
        self.progress = None              # Progress(step, total, loss, acc) of the last report
        self.losses = []                  # [(step, loss)] for a live loss curve
        self.error = None                 # what fn raised (state "failed")
        self.value = None                 # what fn returned (state "done")
        self.threads = None               # torch threads the job ran with
        self.wanted = threads             # torch threads asked for at submit (None: the pool's)
        self._subs = []                   # [(who, alive)] of the submit() calls not withdrawn (cancel, gone)
        self.submitted = time.monotonic()
        self._looked = self.submitted     # when report() last asked the submitters' alive()
        self.started = self.finished = None
        self._stop = False
        self._done = threading.Event()

    def __repr__(self):
        return f"Job({self.key!r:.40}, {self.state}, position={self.position()})"

    def position(self):
        """0 while running, k if k-th in line (1 = next to start), None once finished."""
        return self._pool._position(self)

    def ahead(self):
        """How many jobs run or wait before this one starts (0 once it runs, None once finished)."""
        return self._pool._ahead(self)

    @property
    def done(self):
        return self._done.is_set()

    def wait(self, timeout=None):
        """Block until finished (or `timeout` seconds); True if finished."""
        return self._done.wait(timeout)

    def result(self, timeout=None):
        """fn's value once finished; raises job.error if fn failed, Cancelled if cancelled, TimeoutError."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"job {self.key!r:.60} still {self.state} after {timeout} s")
        if self.state == FAILED:
            raise self.error
        if self.state == CANCELLED:
            raise Cancelled(f"job {self.key!r:.60} was cancelled")
        return self.value

    @property
    def submitters(self):
        """How many submit() calls of this key are not withdrawn (by cancel, or as gone)."""
        return len(self._subs)

    def others(self, who=None):
        """How many other submitters than `who` (default whoami()'s) still want this job and are there (`present`: a
        reloaded or closed tab is not, though it counts as alive for its grace): one per session (submissions with no
        `who` count one each). 0 once finished."""
        who, _ = _caller(who, None)
        with self._pool._lock:
            if self.state in FINISHED:
                return 0
            live = [w for w, alive in self._subs if (w is None or w != who) and _there(w, alive)]
        return sum(w is None for w in live) + len({w for w in live if w is not None})

    def cancel(self, everyone=False, who=None):
        """Withdraw the caller's submission (`who`, default whoami()'s; one made with no `who` if the caller has
        none; a caller with no `who` at all withdraws one), or with everyone=True all of them. When none is left
        the job leaves the queue at once, or, if running, stops at its next progress report. Submitters not there
        (`present`: a tab reloaded or closed, within its grace) are withdrawn with it: nobody is waiting in them, and
        a reloaded tab's Cancel left its own old tab holding the run. Returns the state."""
        return self._pool._cancel(self, everyone, _caller(who, None)[0])

    def report(self, step, total, loss=None, acc=None, phase=None):
        """The progress callback handed to fn (pass it to ce.compress as progress=): records the step
        and the loss; returns False once the job is cancelled, which makes the engine stop. A job of several
        parts names each one's steps with `phase` (fn wraps report for each part)."""
        last = self.progress
        began, first = ((last.began, last.first) if last is not None and last.phase == phase else
                        (time.monotonic(), step))
        self.progress = Progress(step, total, loss, acc, phase, began, first)
        if loss is not None:
            self.losses.append((step, float(loss)))
            if len(self.losses) > MAX_LOSSES:
                self.losses = self.losses[::2]
        now = time.monotonic()
        if now - self._looked >= ALIVE_EVERY:
            self._looked = now
            self._pool._drop_gone(self)
        return not self._stop


class Pool:
    """A fixed number of worker threads running jobs first come, first served; jobs deduplicated by key."""

    def __init__(self, workers=None, threads=None):
        self.workers = workers or default_workers()
        self.threads = threads or default_threads(self.workers)
        self._lock = threading.Condition()
        self._queue = collections.deque()  # jobs waiting, oldest first
        self._running = []                 # jobs a worker runs now
        self._active = {}                  # key -> queued or running job (the one a new submit joins)
        self._threads = []
        self.finished = 0                  # jobs finished in any state (for tests and benchmarks)

    def __repr__(self):
        return f"Pool(workers={self.workers}, threads={self.threads}, running={len(self._running)}, queued={len(self._queue)})"

    def submit(self, key, fn, threads=None, alive=None, who=None):
        """The job for `key`: the queued or running one (one more submitter), else a new one at the end of
        the line. fn(progress) does the work and returns its value; it should pass `progress` to
        ce.compress(progress=...) so that cancel() can stop it. threads: this job's torch threads instead of the
        pool's (a long evaluation a page used to run itself, at process_threads(), as fast as it ran there).
        who: the submitter (a session's id; default whoami()'s), whose cancel() withdraws this submission;
        alive() -> bool: False once the submitter is gone, which withdraws it (None: always alive)."""
        sub = _caller(who, alive)
        with self._lock:
            job = self._active.get(key)
            if job is not None and not job._stop:
                job._subs.append(sub)
                return job
            job = Job(self, key, fn, threads)
            job._subs.append(sub)
            self._active[key] = job
            self._queue.append(job)
            self._start_workers()
            self._lock.notify()
            return job

    def join(self, key, alive=None, who=None, present=None):
        """The queued or running job for `key` with the caller as one more submitter (who, alive as for submit()),
        when nobody who asked for it is still there; None otherwise: it never starts a job. The run of a tab that
        reloaded (a reload is a new session, and the tab's old one counts as waiting SESSION_GRACE s after it went)
        is followed by the new session, kept running and may be cancelled by it, as by the session that submitted
        it; another user's run is theirs (a second student on the same preset sees it only if they press its button
        themselves, and then shares it). present(who, alive) -> whether a submitter is there now (a tab connected,
        not merely within its grace); default: the module's `present` hook (else its alive()). A caller already waiting for it is not counted twice
        (one Cancel withdraws it)."""
        sub = _caller(who, alive)
        present = present or _there
        with self._lock:
            job = self._active.get(key)
            if job is None or job._stop:
                return None
            if sub[0] is not None and any(w == sub[0] for w, _ in job._subs):
                return job
            if any(w is None or present(w, a) for w, a in job._subs):
                return None
            job._subs.append(sub)
            return job

    def busy(self):
        """Whether any job is queued or running: while none is, nothing can be joined, got or watched, and a page
        need not work out the pool keys of its runs to ask (Pruning asks for each of its 10 fine-tuned curve points
        on every slider press)."""
        with self._lock:
            return bool(self._active)

    def get(self, key):
        """The queued or running job for `key`, or None (does not count as a submitter)."""
        with self._lock:
            return self._active.get(key)

    def running(self):
        with self._lock:
            return len(self._running)

    def queued(self):
        with self._lock:
            return len(self._queue)

    def _position(self, job):
        with self._lock:
            if job.state == RUNNING:
                return 0
            if job.state == QUEUED:
                return self._in_line_before(job) + 1
            return None

    def _ahead(self, job):
        with self._lock:
            if job.state == RUNNING:
                return 0
            if job.state == QUEUED:
                return self._in_line_before(job) + len(self._running)
            return None

    def _in_line_before(self, job):  # under self._lock, `job` queued
        """How many queued jobs are before `job`, once those whose submitters are all gone have left the line: a
        closed tab's run waiting there would otherwise count in everyone's "N ahead of you" until its turn."""
        for other in list(self._queue)[:self._queue.index(job)]:
            self._drop_gone(other)
        return self._queue.index(job)

    def _cancel(self, job, everyone, who):
        with self._lock:
            if job.state in FINISHED:
                return job.state
            if everyone:
                job._subs.clear()
            else:
                own = [i for i, (w, _) in enumerate(job._subs) if w == who]
                # else one made with no `who`; a caller with no `who` (a script) withdraws any one
                rest = [i for i, (w, _) in enumerate(job._subs) if w is None or who is None]
                for i in (own or rest)[-1:]:
                    del job._subs[i]
                job._subs[:] = [(w, alive) for w, alive in job._subs if _there(w, alive)]
            return self._left(job)

    def _drop_gone(self, job):
        """Withdraw the submitters of `job` whose alive() is False; stop it if none is left. Returns its state."""
        with self._lock:
            if job.state in FINISHED:
                return job.state
            job._subs[:] = [(w, alive) for w, alive in job._subs if _alive(alive)]
            return self._left(job)

    def _left(self, job):  # under self._lock: a job nobody wants any more leaves the line or stops
        if job._subs:
            return job.state
        job._stop = True
        if self._active.get(job.key) is job:
            del self._active[job.key]   # a new submit of this key starts afresh
        if job.state == QUEUED:
            self._queue.remove(job)
            self._finish(job, CANCELLED)
        return job.state

    def _finish(self, job, state):  # under self._lock
        job.state, job.finished, job.fn = state, time.monotonic(), None
        if self._active.get(job.key) is job:
            del self._active[job.key]
        self.finished += 1
        job._done.set()
        self._lock.notify_all()

    def _start_workers(self):  # under self._lock
        while len(self._threads) < self.workers:
            t = threading.Thread(target=self._work, name=f"train-worker-{len(self._threads)}", daemon=True)
            self._threads.append(t)
            t.start()

    def _work(self):
        while True:
            with self._lock:
                while not self._queue:
                    self._lock.wait()
                job = self._queue[0]
                if self._drop_gone(job) == CANCELLED:  # all who asked for it are gone: the next one
                    continue
                self._queue.popleft()
                job.state, job.started = RUNNING, time.monotonic()
                self._running.append(job)
                fn = job.fn
            job.threads = use_threads(job.wanted or self.threads)
            state = DONE
            try:
                from compress_engine.core.train import paced
                with paced(self._pacer(job)):
                    job.value = fn(job.report)
            except BaseException as e:  # noqa: BLE001 - whatever it is, it belongs to this job
                if job._stop:
                    state = CANCELLED
                else:
                    state, job.error = FAILED, e
            release_threads()  # idle until the next job
            with self._lock:
                self._running.remove(job)
                self._finish(job, state)

    def _pacer(self, job):
        """train.paced()'s fn for `job` on its worker thread: the job's threads while a page run computes (or spare is
        None); while none does, the faster of those and a share of the page runs' threads, timed over TRIAL_STEPS
        training steps on each (see the module's notes); nothing for a job given threads= or inside on_threads."""
        import torch
        pages = process_threads()
        took = {}  # threads -> the seconds of the last TRIAL_STEPS steps taken on them while the cores were free
        last = [None, None, False]  # at the last step: (monotonic, its threads, whether the cores were free)

        def pace(kind):
            now, have = time.monotonic(), torch.get_num_threads()
            if kind == "step" and last[0] is not None and last[1] == have and last[2]:
                took.setdefault(have, collections.deque(maxlen=TRIAL_STEPS)).append(now - last[0])
            if job.wanted is not None or getattr(_pinned, "depth", 0):
                return
            free = spare is not None and spare()
            want = _faster(took, job.threads, max(job.threads, pages // max(1, len(self._running)))) if free \
                else job.threads
            if have != want:
                if want < have:
                    release_threads()  # its idle workers would keep the page runs' OpenMP from spinning
                use_threads(want)
            if kind == "step":
                last[:] = time.monotonic(), want, free
        return pace


TRIAL_STEPS = 10  # training steps a job times on each thread count it may take while the cores are free


def _faster(took, own, most):
    """The thread count a job runs its next step on while the cores are free: each of `most` and `own` until it has
    been timed over TRIAL_STEPS steps (`took`: threads -> recent step seconds), then the one whose median step was
    shorter. Two threads are not always faster: a small model's products, or a runtime kept from spinning
    (release_threads), can make them slower than one; a convolutional net's are nearly twice as fast
    (bench/training_pace.py)."""
    if own == most:
        return own
    for n in (most, own):
        if len(took.get(n, ())) < TRIAL_STEPS:
            return n
    return min((statistics.median(took[n]), n) for n in (own, most))[1]


_omp = []  # [libgomp's omp_pause_resource_all, or None], once torch has loaded its OpenMP runtime


def release_threads():
    """Free the calling thread's idle OpenMP worker threads (libgomp's omp_pause_resource_all); its next parallel op
    makes them again, in well under a millisecond. -> whether there was a runtime to ask (libgomp: torch's on Linux).

    Idle, they still count: once a process holds more OpenMP threads than the machine has cores, libgomp has every
    thread sleep between two parallel regions instead of spinning briefly, and each region waits for them to be woken.
    On these 2 cores a 2-thread LeNet-5 training step took 21 ms instead of 15.5 while one other thread's idle worker
    was alive (bench/training_pace.py), so a thread about to wait a while (a page following a training job, the pool
    between jobs, a job going down to fewer threads, the thread computing ahead) gives its workers back."""
    if not _omp:
        import sys
        if "torch" not in sys.modules:  # no runtime loaded yet: nothing to free (and look again next time)
            return False
        _omp.append(_pause_function())
    if _omp[0] is None:
        return False
    return _omp[0](1) == 0  # omp_pause_soft: the threads go, the settings stay


def _pause_function():
    """omp_pause_resource_all of the libgomp this process has loaded (the one torch ships), or None (another OpenMP
    runtime, another system, a libgomp older than OpenMP 5.0)."""
    import ctypes
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "/libgomp" in line})
    except OSError:
        return None
    for path in paths:
        try:
            fn = ctypes.CDLL(path).omp_pause_resource_all
        except (OSError, AttributeError):
            continue
        fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
        return fn
    return None


_pinned = threading.local()  # depth: on_threads blocks this thread is inside (their count is kept, not paced)


def process_threads():
    """The torch threads a new thread starts with (the process default): what a page run computes on."""
    import torch  # on first use, not at import: Home sets the pool's session hook (pages/common) before torch loads
    default = []
    reader = threading.Thread(target=lambda: default.append(torch.get_num_threads()))
    reader.start()
    reader.join()
    return default[0]


def use_threads(n):
    """Run this thread's torch ops on n threads without changing the count other threads start with.

    set_num_threads sets the calling thread's count and the process default that new threads copy;
    get_num_threads() then pins this thread's count, and a short helper thread restores the default
    it read before."""
    import torch
    default = process_threads()
    torch.set_num_threads(n)
    got = torch.get_num_threads()
    writer = threading.Thread(target=torch.set_num_threads, args=(default,))
    writer.start()
    writer.join()
    return got


@contextlib.contextmanager
def on_threads(n):
    """Within the block this thread's torch ops run on n threads, then on the count it had: a job of several parts
    runs each on its own count (a size-budget fit scans at the page's threads, as a page run scanned, then trains at
    the pool's). Other threads, and the count new threads start with, are left as they were."""
    import torch
    before = torch.get_num_threads()
    got = use_threads(n)
    _pinned.depth = getattr(_pinned, "depth", 0) + 1
    try:
        yield got
    finally:
        _pinned.depth -= 1
        use_threads(before)


_pool = None
_pool_lock = threading.Lock()


def pool():
    """The process-wide training pool (made on first use with the default size)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = Pool()
        return _pool
