"""Concurrent clients for the benches: `clients` processes, each running
worker(*args, n // clients, ready, go, done), started together once every one
is ready; the rate is the requests they made over the time they took. A
worker puts None in `done` when it finished, or the reason it stopped."""
import multiprocessing
import time


def rate(worker, args, n, clients):
    """Requests per second of n requests over `clients` processes."""
    ready, go, done = multiprocessing.Semaphore(0), multiprocessing.Event(), multiprocessing.Queue()
    procs = [multiprocessing.Process(target=worker, args=(*args, n // clients, ready, go, done))
             for _ in range(clients)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.acquire()
    t0 = time.perf_counter()
    go.set()
    errors = [e for e in (done.get(timeout=600) for _ in procs) if e]
    took = time.perf_counter() - t0
    for p in procs:
        p.join()
    if errors:
        raise SystemExit(errors[0])
    return clients * (n // clients) / took
