"""The CSV logs of a run: the seed's loss CSV (epoch,Real_P,Fake_P,Gen_loss,Dis_loss) and the eval
CSV of --eval_every; rows written whole and flushed, read back up to the last complete row."""
import numpy as np

import files
from errors import UsageError

CSV_COLUMNS = ('epoch', 'Real_P', 'Fake_P', 'Gen_loss', 'Dis_loss')
CSV_HEADER = ','.join(CSV_COLUMNS) + '\n'
# the eval CSV of --eval_every (evaluate.py's metrics)
EVAL_COLUMNS = ('epoch', 'FID', 'KID', 'precision', 'recall', 'IS', 'seconds')
# a conditional run's: its conditional accuracy too
CONDITIONAL_EVAL_COLUMNS = EVAL_COLUMNS + ('accuracy',)


def eval_columns(condition):
    """The eval CSV's columns of a run with this condition (None: unconditional)."""
    return EVAL_COLUMNS if condition is None else CONDITIONAL_EVAL_COLUMNS


def csv_format(width):
    """The row format of a CSV log of width columns: a 0-based epoch, then values with 6 decimals."""
    return '{:5d}' + ',{:.6f}' * (width - 1) + '\n'


def read_csv(path, columns=CSV_COLUMNS):
    """Read a CSV log (the loss CSV by default) into {column: np.ndarray}, up to its last complete row."""
    kind = 'loss' if columns == CSV_COLUMNS else 'eval'
    if not files.isfile(path):
        raise UsageError('{} {}: pass a {} CSV written by main.py (logs/{{SaveName}}-{}.csv).'.format(
            path, 'is a folder' if files.isdir(path) else 'does not exist', kind, kind))
    try:
        with files.open_file(path) as f:
            text = f.read()
    except UnicodeDecodeError:
        raise UsageError('{} is not a text file: pass a {} CSV written by main.py '
                         '(logs/{{SaveName}}-{}.csv).'.format(path, kind, kind))
    lines = text.split('\n')
    header = ','.join(columns)
    if not lines[0].strip():
        raise UsageError('{} is empty: it has no header; was the run started?'.format(path))
    if columns == EVAL_COLUMNS and lines[0].strip() == ','.join(CONDITIONAL_EVAL_COLUMNS):
        columns, header = CONDITIONAL_EVAL_COLUMNS, lines[0].strip()  # a conditional run's
    if lines[0].strip() != header:
        raise UsageError('{} has header "{}", expected "{}": is it a {} CSV from '
                         'main.py?'.format(path, lines[0].strip(), header, kind))
    # the last piece has no newline: a row still being written, or '' after a complete file
    rows = []
    for number, line in enumerate(lines[1:-1], start=2):
        fields = line.split(',')
        try:
            if len(fields) != len(columns):
                raise ValueError
            rows.append([int(fields[0])] + [float(v) for v in fields[1:]])
        except ValueError:
            raise UsageError('{} line {} is not a row of {} numbers: "{}"; fix or delete that '
                             'line.'.format(path, number, len(columns), line))
    table = np.array(rows, dtype=np.float64).reshape(-1, len(columns))
    out = {name: table[:, i] for i, name in enumerate(columns)}
    out['epoch'] = out['epoch'].astype(np.int64)
    return out


def read_loss_csv(path):
    """Read a loss CSV into {column: np.ndarray}, up to its last complete row."""
    return read_csv(path, CSV_COLUMNS)


def csv_row(epoch, values):
    """One epoch's row of a CSV log: the 0-based epoch, then values with 6 decimals."""
    return csv_format(len(values) + 1).format(epoch, *[float(v) for v in values])


def start_csv(path, rows, columns=CSV_COLUMNS):
    """Write a CSV log's header and rows (the text of the rows its checkpoint keeps)."""
    with files.saving('the CSV log', path) as tmp, files.open_file(tmp, 'w') as f:
        f.write(','.join(columns) + '\n' + rows)


def append_csv(path, row):
    """Append one row to a CSV log, flushed to the disk."""
    with files.writing('a row of the CSV log', path):
        files.append(path, row)
