"""The run's checkpoint: what it keeps beyond the networks (the CSV rows, the best FID, the run's
flags), the newest checkpoint that restores whole (past a damaged one or a lost state file), and
saving one completely or not at all."""
import json
import os
import re
import tempfile
import time

import tensorflow as tf
from absl import logging

from errors import OutputError, UsageError, short_text
import files
from files import writing

FLAGS_KEY = 'run_flags/.ATTRIBUTES/VARIABLE_VALUE'
# where a run writes is not part of what it is: a copied run's checkpoints stay identical
OUTPUT_FLAGS = ('LOG_PATH', 'MODEL_PATH', 'PLOT_PATH')
# what a damaged checkpoint raises: a truncated data file gives IndexError, the rest OpErrors
DAMAGE = (tf.errors.OpError, IndexError)


def numbered(directory):
    """The checkpoint prefixes in directory, newest (highest number) first."""
    found = []
    for index in files.glob(os.path.join(directory, 'ckpt-*.index')):
        match = re.fullmatch(r'ckpt-(\d+)\.index', os.path.basename(index))
        if match:
            found.append((int(match.group(1)), index[:-len('.index')]))
    return [prefix for _, prefix in sorted(found, reverse=True)]


def saved_flags(directory):
    """The flags the newest readable checkpoint in directory holds, or None."""
    for prefix in numbered(directory):
        try:
            return json.loads(reader(prefix).get_tensor(FLAGS_KEY))
        except (DAMAGE + (ValueError, KeyError)):
            continue
    return None


def reader(prefix):
    """The reader of the checkpoint prefix (not tf.train.load_checkpoint, which takes a prefix for
    a folder where ram:// says it is one: ckpt-4 on ram:// is, since ckpt-4.index begins so)."""
    return tf.compat.v1.train.NewCheckpointReader(prefix)


def read_whole(prefix):
    """Read every tensor of a checkpoint (checking each one's checksum); its reader, or DAMAGE."""
    whole = reader(prefix)
    for name in whole.get_variable_to_shape_map():
        whole.get_tensor(name)
    return whole


def move_damaged(prefix):
    """Rename a damaged checkpoint's files to *.damaged, out of the way but not lost."""
    for path in files.glob(prefix + '.*'):
        if not path.endswith('.damaged'):
            files.rename(path, path + '.damaged')


class RunCheckpoint:
    """A tf.train.Checkpoint of objects plus the run's records, with its manager.

    history: {'loss', 'eval'}: the rows of the loss and eval CSVs, as text, so that the CSVs can
    be rewritten exactly from the checkpoint; best_fid: the lowest FID so far; flags: the run's
    flags as JSON but for OUTPUT_FLAGS (seed and shape flags included), for a run whose
    flags.json was lost.
    """

    def __init__(self, directory, keep, chief, **objects):
        self.history = {kind: tf.Variable('', dtype=tf.string, trainable=False,
                                          name=kind + '_rows') for kind in ('loss', 'eval')}
        self.best_fid = tf.Variable(float('inf'), dtype=tf.float64, trainable=False,
                                    name='best_fid')
        self.flags = tf.Variable('', dtype=tf.string, trainable=False, name='run_flags')
        self.ckpt = tf.train.Checkpoint(loss_rows=self.history['loss'],
                                        eval_rows=self.history['eval'], best_fid=self.best_fid,
                                        run_flags=self.flags, **objects)
        # every worker restores from the run's folder; the others must save too (collectives),
        # but into a scratch folder of their own (a worker that restored from its empty scratch
        # folder trained from step 0 beside a resumed chief, and failed in a collective)
        self.directory, self.chief = directory, chief
        # (on this machine's own disk: it is no file of the run's, and is deleted at the end)
        self.scratch = None if chief else tempfile.mkdtemp(prefix='dcgan-worker-')
        self.keep = keep
        self.manager = None

    def restore(self, current):
        """Restore the newest checkpoint that restores whole and return its prefix, its manager
        started (None if there is none: start it with start_manager() then). Damaged ones are
        moved aside with a warning, the state file rewritten. current: this run's flags, to name those that
        differ from the checkpoint's when it does not fit. Only the chief changes the folder."""
        for leftover in files.glob(os.path.join(self.directory, '*_temp')) if self.chief else ():
            files.rmtree(leftover)  # a save that was cut off
        prefixes = numbered(self.directory)
        try:
            state = tf.train.get_checkpoint_state(self.directory)
        except ValueError:  # an empty or garbled state file
            state = None
        named = os.path.basename(state.model_checkpoint_path) if state else None
        damaged = []
        for prefix in prefixes:
            try:  # read whole first: a failed restore would leave the networks half restored
                reader = read_whole(prefix)
            except DAMAGE as e:
                damaged.append('{} ({})'.format(os.path.basename(prefix), short_text(e, 120)))
                if self.chief:
                    move_damaged(prefix)
                continue
            try:
                self.ckpt.restore(prefix).assert_existing_objects_matched()
            except (ValueError, AssertionError) as e:
                made = json.loads(reader.get_tensor(FLAGS_KEY)) if reader.has_tensor(FLAGS_KEY) \
                    else {}
                changed = ['--{}={} (this run: {})'.format(k, made[k], current[k])
                           for k in sorted(made) if k in current and made[k] != current[k]
                           and k not in OUTPUT_FLAGS + ('epochs', 'resume')]
                raise UsageError('cannot restore {} with these flags ({}): rerun with the flags '
                                 'it was made with, or add --noresume to start fresh.'.format(
                                     prefix, 'it was made with ' + ', '.join(changed) if changed
                                     else str(e).splitlines()[0][:200]))
            chosen = os.path.basename(prefix)
            if damaged:
                logging.warning('Damaged checkpoint(s) %s moved aside to *.damaged: resuming '
                                'from the older %s', ', '.join(damaged), chosen)
            elif named != chosen:
                logging.warning('The checkpoint state file of %s names %s, but the newest '
                                'checkpoint there is %s: resuming from %s', self.directory,
                                named or 'nothing (it is missing or unreadable)', chosen, chosen)
            self.start_manager(numbered(self.directory))
            return prefix
        if damaged:
            raise UsageError('every checkpoint in {} is damaged ({}): add --noresume to start a '
                             'new run (the old one is moved aside).'.format(
                                 self.directory, '; '.join(damaged)))
        return None

    def start_manager(self, prefixes):
        """Rewrite the state file to list prefixes (newest first) and start the manager.

        Each is listed with its time, after the last preserved one: without times the manager
        takes them as preserved and never deletes them, and every resume left --keep_checkpoints
        more behind. The manager deletes the oldest beyond keep at its next save."""
        if not self.chief:
            self.manager = tf.train.CheckpointManager(self.ckpt, self.scratch,
                                                      max_to_keep=self.keep)
            return
        if prefixes or files.exists(os.path.join(self.directory, 'checkpoint')):
            oldest_first = prefixes[::-1]
            times = [files.getmtime(p + '.index') for p in oldest_first]
            with writing('the checkpoint state file', os.path.join(self.directory, 'checkpoint')):
                tf.compat.v1.train.update_checkpoint_state(
                    self.directory, os.path.basename(prefixes[0]) if prefixes else '',
                    [os.path.basename(p) for p in oldest_first],  # relative, as TF's
                    all_model_checkpoint_timestamps=times,
                    last_preserved_timestamp=min(times, default=time.time()) - 1)
        self.manager = tf.train.CheckpointManager(self.ckpt, self.directory,
                                                  max_to_keep=self.keep)

    @property
    def latest(self):
        """The newest complete checkpoint, or None."""
        return self.manager.latest_checkpoint if self.manager else None

    def save(self, step, flags):
        """Save checkpoint ckpt-{step} with the run's flags; a failed save leaves no files
        behind, keeps the checkpoints before it, and raises an OutputError."""
        self.flags.assign(json.dumps({k: v for k, v in flags.items() if k not in OUTPUT_FLAGS},
                                     sort_keys=True))
        try:
            return self.manager.save(checkpoint_number=step)
        except (OSError,) + DAMAGE as e:
            for path in files.glob(os.path.join(self.manager.directory,
                                                'ckpt-{}[._]*'.format(step))):
                files.rmtree(path) if files.isdir(path) else files.remove(path)
            error = OutputError('checkpoint ckpt-{}'.format(step), self.manager.directory, e)
            error.note = self.kept()
            raise error from e

    def kept(self):
        """What a run that stops on an error keeps, in words."""
        return ('the last good checkpoint, {}, is kept'.format(self.latest) if self.latest else
                'no checkpoint was saved yet')
