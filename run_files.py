"""Every path one training run writes, named once; moving an old run aside; the run lock; the
saved flags of a run and what changed since."""
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import socket
import tempfile
import threading
import time

from absl import logging

import config
from errors import UsageError
import files


@dataclasses.dataclass(frozen=True)
class RunFiles:
    """The files of one run (DESIGN.md's "Files a run writes"), from its SaveName and the three
    output folders: the only place that spells their names."""
    save_name: str
    log_path: str = 'logs/'
    model_path: str = 'models/'
    plot_path: str = 'plot/'

    @classmethod
    def of(cls, config):
        """The files of a config.TrainConfig's run."""
        return cls(config.save_name, config.LOG_PATH, config.MODEL_PATH, config.PLOT_PATH)

    @classmethod
    def of_loss_csv(cls, path, plot_path='plot/'):
        """The run that wrote a loss CSV: logs/MNIST-False-loss.csv -> SaveName MNIST-False (a
        CSV not named so keeps its own stem and has no eval CSV beside it)."""
        base = os.path.basename(path)
        suffix = '-loss.csv'
        name = base[:-len(suffix)] if base.endswith(suffix) else os.path.splitext(base)[0]
        return cls(name, os.path.dirname(path), plot_path=plot_path)

    @classmethod
    def of_model_file(cls, path):
        """The run whose model folder holds path (a .weights.h5 or .keras file)."""
        folder = os.path.dirname(files.absolute(path))
        return cls(os.path.basename(folder), model_path=os.path.dirname(folder))

    # ------------------------------------------------------------------ models/{SaveName}/
    @property
    def model_dir(self):
        return os.path.join(self.model_path, self.save_name)

    @property
    def flags(self):
        """The run's flags (seed included), written from its Config."""
        return os.path.join(self.model_dir, 'flags.json')

    @property
    def checkpoints(self):
        return os.path.join(self.model_dir, 'checkpoints')

    @property
    def generator_weights(self):
        return os.path.join(self.model_dir, 'Generator.weights.h5')

    @property
    def discriminator_weights(self):
        return os.path.join(self.model_dir, 'Discriminator.weights.h5')

    @property
    def generator(self):
        """The whole generator (the averaged one with --ema), loadable without this code."""
        return os.path.join(self.model_dir, 'generator.keras')

    @property
    def generator_raw(self):
        """With --ema: the raw, not averaged, generator."""
        return os.path.join(self.model_dir, 'generator_raw.keras')

    @property
    def best_dir(self):
        return os.path.join(self.model_dir, 'best')

    @property
    def best_generator(self):
        return os.path.join(self.best_dir, 'generator.keras')

    @property
    def best_json(self):
        return os.path.join(self.best_dir, 'best.json')

    @property
    def locks(self):
        """One lock file in each output folder: a second run that shares any one is refused."""
        folders = {}
        for folder in (self.model_path, self.log_path, self.plot_path):
            folders.setdefault(files.real(folder), folder)
        return [os.path.join(folder, self.save_name + '.lock') for folder in folders.values()]

    # ------------------------------------------------------------------ logs/ and plot/
    @property
    def loss_csv(self):
        return os.path.join(self.log_path, self.save_name + '-loss.csv')

    @property
    def eval_csv(self):
        return os.path.join(self.log_path, self.save_name + '-eval.csv')

    @property
    def eval_protocol(self):
        """The eval CSV's companion: feature model, its file's hash, sample counts, resize."""
        return os.path.join(self.log_path, self.save_name + '-eval.json')

    @property
    def tensorboard(self):
        return os.path.join(self.log_path, 'tensorboard', self.save_name)

    @property
    def plot_dir(self):
        return os.path.join(self.plot_path, self.save_name)

    def grid(self, epoch):
        """The sample grid of a 1-based epoch."""
        return os.path.join(self.plot_dir, '{:03d}.png'.format(epoch))

    @property
    def grid_pattern(self):
        """A glob pattern matching every epoch's sample grid."""
        return os.path.join(self.plot_dir, '[0-9][0-9][0-9].png')

    @property
    def real_grid(self):
        """A grid of real training images as the networks see them."""
        return os.path.join(self.plot_dir, 'real.png')

    def outputs(self):
        """What a fresh run of this SaveName would overwrite, so moves aside first."""
        return [self.model_dir, self.plot_dir, self.loss_csv, self.eval_csv, self.eval_protocol,
                self.tensorboard]


def move_aside(paths):
    """Rename existing paths to PATH.old-TIMESTAMP (-2, -3, ... when taken), so a fresh run never
    deletes or overwrites an old one."""
    stamp = time.strftime('%Y%m%d-%H%M%S')
    moved = []
    for path in paths:
        path = path.rstrip('/')
        if files.exists(path):
            target, n = '{}.old-{}'.format(path, stamp), 1
            while files.exists(target):
                n += 1
                target = '{}.old-{}-{}'.format(path, stamp, n)
            files.rename(path, target)
            moved.append(target)
    return moved


def read_saved_flags(flags_path, fix='restore it from a copy, or add --noresume to start a new '
                     'run (the old one is moved aside)'):
    """The flags a previous run saved in flags_path, or None if there is no such file; a damaged
    one is a UsageError ending in fix."""
    if not files.exists(flags_path):
        return None
    try:
        with files.open_file(flags_path) as f:
            saved = json.load(f)
    except (ValueError, OSError) as e:
        raise UsageError('{} cannot be read as JSON ({}): {}.'.format(
            flags_path, getattr(e, 'strerror', None) or e, fix))
    if not isinstance(saved, dict):
        raise UsageError('{} holds a JSON {}, not the run\'s flags: {}.'.format(
            flags_path, type(saved).__name__, fix))
    seed = saved.get('seed')
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2 ** 32:
        raise UsageError('{} has no valid seed ({!r}): {}.'.format(flags_path, seed, fix))
    return saved


def saved_run_flags(files, current, shape_flags):
    """The flags the run of files was made with (its newest checkpoint's copy, which wins over a
    flags.json edited by hand, with a warning; flags.json where there is no checkpoint), or None
    for a new run; refuses ones that shape other networks. shape_flags: {name: the value of a
    run saved before that flag existed}."""
    import checkpoints  # TensorFlow, which plot_logs.py (a RunFiles user) does without
    written = read_saved_flags(files.flags)
    saved = checkpoints.saved_flags(files.checkpoints)  # what the checkpoint was made with
    if saved is None:
        saved = written
    elif written is None:
        logging.warning('%s is missing: the run\'s flags (seed %s) come from its checkpoint',
                        files.flags, saved.get('seed'))
    else:
        made = {k: saved[k] for k in ('seed',) + tuple(shape_flags) if k in saved}
        edited = flag_differences(made, written)
        if edited:
            logging.warning('%s differs from the checkpoint it describes (%s): resuming with the '
                            'checkpoint\'s values', files.flags, '; '.join(edited))
    if saved is None:
        return None
    made = {k: saved.get(k, shape_flags[k]) for k in shape_flags}
    wrong = [k for k in shape_flags if made[k] != current.get(k)]
    if wrong:
        raise UsageError('the checkpoint in {} was made with {}, which shape the networks: rerun '
                         'with those values, or add --noresume to start a new run (the old one is '
                         'moved aside).'.format(files.model_dir, ', '.join(
                             '--{}={}'.format(k, made[k]) for k in wrong)))
    return saved


def saved_shape(model_file, names):
    """The settings names (of those that shape a generator) from the flags.json of the run that
    wrote model_file, said in the log; {} when that file is missing or no names are asked."""
    flags_path = RunFiles.of_model_file(model_file).flags
    saved = read_saved_flags(flags_path, 'pass the {} of the run instead'.format(
        config.SHAPE_FLAG_LIST)) if names else None
    if saved is None:
        return {}
    values = {k: saved[k] for k in names if k in saved}
    logging.info('Shape of %s from %s: %s', model_file, flags_path, ', '.join(
        '--{}={}'.format(k, v) for k, v in sorted(values.items())))
    return values


def flag_differences(saved, current):
    """Lines 'name: saved -> current' for flags whose values changed."""
    return ['{}: {} -> {}'.format(k, saved[k], current.get(k)) for k in sorted(saved)
            if k in current and saved[k] != current[k]]


def lock_holder():
    """Who holds a lock: this process's PID and host, and since when."""
    return 'pid {} on host {}, since {}'.format(os.getpid(), socket.gethostname(),
                                               time.strftime('%Y-%m-%d %H:%M:%S'))


def refuse_lock(holder, path, note=''):
    """The refusal of a second run of a SaveName whose lock at path holder holds."""
    raise UsageError('another run is training this SaveName ({}; lock {}): wait for it to finish '
                     'or stop it, or give this run its own --MODEL_PATH, --LOG_PATH and '
                     '--PLOT_PATH{}.'.format(holder, path, note))


def took_over(path, stale):
    """Say that the lock at path, left by a run that died holding it (stale), is taken over."""
    logging.warning('Took over the lock %s left by a run that ended without releasing it (%s)',
                    path, stale)


class RunLock:
    """An exclusive lock on one {folder}/{SaveName}.lock, so two runs never share its files.

    The operating system drops the lock when its process ends, however it ends, so a lock left by
    a killed run is taken over; the file names the PID and host of its holder. A second lock,
    on this machine's temporary folder and named by the lock's absolute path, holds even when
    the folder is deleted under a live run (which removed the lock file, and let a second run
    write into the first one's folder).
    """

    def __init__(self, path):
        self.path = path
        key = hashlib.sha1(os.path.abspath(path).encode()).hexdigest()[:20]
        self.host_path = os.path.join(tempfile.gettempdir(), 'dcgan-locks', key + '.lock')
        self.files = []

    def take(self, path):
        """Lock path (created if needed) and return its file, or raise the refusal."""
        file = files.open_file(path, 'a+')  # local only: fcntl's lock
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            file.seek(0)
            holder = file.read().strip() or 'unknown'
            file.close()
            refuse_lock(holder, self.path)
        self.files.append(file)
        return file

    def __enter__(self):
        files.makedirs(os.path.dirname(self.host_path))
        try:
            self.take(self.host_path)
            file = self.take(self.path)
        except BaseException:
            self.__exit__()
            raise
        file.seek(0)
        stale = file.read().strip()
        if stale:
            took_over(self.path, stale)
        holder = lock_holder() + '\n'
        for file in self.files:
            file.seek(0)
            file.truncate()
            file.write(holder)
            file.flush()
        return self

    def __exit__(self, *exc):
        for file in self.files:
            with contextlib.suppress(OSError):
                file.truncate(0)
            file.close()  # closing releases the lock
        self.files = []


class RemoteLock:
    """The lock {folder}/{SaveName}.lock on a remote store (gs://, ...), which has neither a lock
    nor an atomic create: a file naming its holder, rewritten every HEARTBEAT seconds while the run
    lives, deleted when it ends. A lock whose holder was last alive STALE seconds ago or more (a
    run killed without its exit) is taken over. Two runs starting within SETTLE seconds of each
    other both write the file; each reads it back after SETTLE seconds, and the one that finds
    the other's line refuses."""
    HEARTBEAT, STALE, SETTLE = 60, 300, 1.0

    def __init__(self, path):
        self.path = path
        self.holder = lock_holder()
        self.stop = threading.Event()
        self.beat = None

    def read(self):
        """The lock file's line, '' when there is none."""
        try:
            with files.open_file(self.path) as f:
                return f.read().strip()
        except (OSError, ValueError):
            return ''

    def write(self):
        """Write this run's line with the time it was alive."""
        with files.writing('the run lock', self.path), files.open_file(self.path, 'w') as f:
            f.write('{}; alive at {:.0f}\n'.format(self.holder, time.time()))

    def refuse(self, holder):
        refuse_lock(holder, self.path, ' (a lock not renewed for {} s is taken over)'.format(
            self.STALE))

    def __enter__(self):
        found = self.read()
        alive = re.search(r'alive at (\d+)', found)
        if found and (not alive or time.time() - int(alive.group(1)) < self.STALE):
            self.refuse(found)
        if found:
            took_over(self.path, found)
        self.write()
        time.sleep(self.SETTLE)
        found = self.read()
        if not found.startswith(self.holder):
            self.refuse(found)
        self.beat = threading.Thread(target=self.renew, daemon=True)
        self.beat.start()
        return self

    def renew(self):
        """Rewrite the line every HEARTBEAT seconds until the run ends."""
        while not self.stop.wait(self.HEARTBEAT):
            with contextlib.suppress(Exception):  # a missed beat only ages the line
                self.write()

    def __exit__(self, *exc):
        self.stop.set()
        if self.beat is not None:
            self.beat.join()
        with contextlib.suppress(OSError):
            files.remove(self.path)


@contextlib.contextmanager
def lock_outputs(run_files):
    """Hold a lock in each output folder of a run while it writes into them (a RemoteLock on a
    remote store)."""
    with contextlib.ExitStack() as stack:
        for path in run_files.locks:
            stack.enter_context(RemoteLock(path) if files.is_remote(path) else RunLock(path))
        yield
