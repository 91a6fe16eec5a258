"""dlopt's OpenMP pool cooperates with threadpoolctl and joblib: no oversubscription.

dlopt's CPU kernels run ``num_threads(omp_get_max_threads())`` teams of the libgomp the module links, which
threadpoolctl finds among the loaded libraries (``user_api="openmp"``) and limits with omp_set_num_threads;
joblib's process workers start with OMP_NUM_THREADS = cpu_count // n_jobs. No timings here (bench/).
"""

import os
import subprocess
import sys
import textwrap

import pytest

import dlopt

threadpoolctl = pytest.importorskip("threadpoolctl")


def test_threadpoolctl_finds_and_limits_dlopts_openmp_library():
    openmp = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "openmp"]
    assert openmp, "threadpoolctl sees no OpenMP library although dlopt._core links one"
    before = dlopt.get_num_threads()
    dlopt.set_num_threads(2)
    try:
        with threadpoolctl.threadpool_limits(1):
            assert dlopt.get_num_threads() == 1
        with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
            assert dlopt.get_num_threads() == 1
        assert dlopt.get_num_threads() == 2  # restored on exit
    finally:
        dlopt.set_num_threads(before)


def os_threads_started_by_a_fit(limit: bool) -> int:
    """OS threads the process gained during one large fit (libgomp starts its pool on first use), in a
    fresh interpreter so no earlier test has started the pool."""
    code = textwrap.dedent(f"""
        import os, numpy as np, dlopt, threadpoolctl
        from dlopt.linear_model import LinearRegression
        dlopt.set_num_threads(2)
        X = np.random.default_rng(0).normal(size=(20000, 16))
        y = X.sum(axis=1)
        before = len(os.listdir("/proc/self/task"))
        model = LinearRegression(optimizer="sgd", lr=0.01, epochs=2, batch_size=20000, tol=0.0,
                                 n_iter_no_change=1)
        if {limit}:
            with threadpoolctl.threadpool_limits(1):
                model.fit(X, y)
        else:
            model.fit(X, y)
        print(len(os.listdir("/proc/self/task")) - before)
    """)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through Linux's /proc")
def test_a_fit_inside_threadpool_limits_1_uses_one_thread():
    assert os_threads_started_by_a_fit(limit=False) == 1  # the check can see a second thread
    assert os_threads_started_by_a_fit(limit=True) == 0


def test_joblib_workers_do_not_oversubscribe():
    joblib = pytest.importorskip("joblib")
    n_jobs = 2
    inner = joblib.Parallel(n_jobs=n_jobs)(joblib.delayed(dlopt.get_num_threads)() for _ in range(n_jobs))
    assert inner == [max(joblib.cpu_count() // n_jobs, 1)] * n_jobs
