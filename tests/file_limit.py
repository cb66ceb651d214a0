"""Run a Python script with a file size limit, so that writes past it fail (EFBIG) as writes to a
full disk do (ENOSPC): python tests/file_limit.py BYTES script.py [args]."""
import resource
import runpy
import signal
import sys

if __name__ == '__main__':
    limit = int(sys.argv[1])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    sys.argv = sys.argv[2:]
    sys.path.insert(0, sys.argv[0].rsplit('/', 1)[0])
    runpy.run_path(sys.argv[0], run_name='__main__')
