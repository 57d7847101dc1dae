"""What the grader watches, listed once: read by the scanner (``grader.tamper.scan_source``), handed to
the probe in the kernel (``grader.probe``) as data.
"""

# Modules whose attributes the checks rely on: the probe records them in the kernel; the scanner
# flags assigning to an attribute of any of them (``MODULE_NAMES``).
WATCHED_MODULES = ("torch", "torch.nn", "torch.nn.functional", "math", "utils", "utils.grading",
                   "utils.basic_unet", "utils.unet_utils", "utils.ddpm_utils", "utils.guidance", "utils.blocks",
                   "utils.timesteps", "utils.fast", "utils.fast_path", "utils.path_apply", "einops", "importlib",
                   "types", "IPython.core.interactiveshell")
# The names a cell reaches modules by, whose attributes it must not assign: the watched modules' own,
# the names they are usually imported as, and modules an honest answer has no business changing.
MODULE_NAMES = frozenset({name.split(".")[0] for name in WATCHED_MODULES} | {
    "nn", "F", "grading", "basic_unet", "unet_utils", "ddpm_utils",
    "sys", "builtins", "os", "np", "numpy", "ipykernel", "functools", "inspect", "gc", "warnings", "random"})
# Modules an honest answer never imports: the interpreter's and the kernel's insides, and the grader.
INTERNAL_MODULES = ("builtins", "ctypes", "gc", "inspect", "importlib", "IPython", "ipykernel", "nbgrader", "grader")
# ... nor the network, a database or signals (flagged as ``import X``; ``from X import`` is not).
NETWORK_MODULES = ("socket", "urllib", "requests", "http", "sqlite3", "signal", "zmq", "jupyter_client")

# The grader's own files and folders (a folder with its slash), in the order a finding names the first met.
GRADER_PATHS = ("gradebook", "solutions/", "submitted/", "autograded/", "nbgrader_config")
GRADER_WORDS = tuple(p.rstrip("/") for p in GRADER_PATHS)
# The environment's files.
ENVIRONMENT_PATHS = ("site-packages", "/proc/")
# Strings a cell has no business writing.
SENSITIVE_STRINGS = GRADER_PATHS + ("grading.py",) + ENVIRONMENT_PATHS + ("BEGIN HIDDEN",)
# Words of the paths a cell must not write to: the grader's, the course's, the environment's.
COURSE_PATH_WORDS = GRADER_WORDS + ("utils", "grading", ".venv", "judge", "release") + ENVIRONMENT_PATHS
# Paths the probe's audit hook reports an opening of (in the kernel, every path is absolute).
PROBE_SENSITIVE_PATHS = tuple("/" + p if p.endswith("/") else p for p in GRADER_PATHS) + ("/source/",)
