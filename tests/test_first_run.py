"""What a newcomer meets first: messages that give the next command, grids to look at, paths with
~ and $VARS, and README and docs commands that exist."""
import dataclasses
import json
import logging
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from errors import UsageError
from helpers import ROOT, script_env, small_config, train_in_process
import model
import trainer


def test_a_folder_of_pictures_given_as_records_names_the_conversion(tmp_path):
    folder = tmp_path / 'my_images'
    folder.mkdir()
    for i in range(3):
        Image.new('RGB', (8, 8)).save(folder / '{}.jpg'.format(i))
    with pytest.raises(UsageError, match=r'my_images holds 3 pictures, not records: convert them '
                       r'first with \S*python\S* \S*convert_tfrecord.py --DatasetPath=\S*my_images '
                       r'--TFRecordPath=records/my_images, then train with --ImageType=folder '
                       r'--TFRecordPath=records/my_images'):
        train_in_process(tmp_path, ImageType='folder', TFRecordPath=str(folder), epochs=1)


def test_capped_steps_per_epoch_is_one_warning(tmp_path, caplog):
    run = trainer.build(small_config(tmp_path, ImageType='digits', BATCH_SIZE=128,
                                     steps_per_epoch=40))
    assert run.steps_per_epoch == 15
    assert '1797 images make 15 batches of --BATCH_SIZE=128: an epoch is 15 steps, not ' \
        '--steps_per_epoch=40' in caplog.text


def test_flags_json_reports_bbox_false_where_it_is_ignored(digits_run):
    saved = json.load(open(os.path.join(digits_run[0], 'models', 'digits-False', 'flags.json')))
    assert digits_run[1].config.bbox is True and saved['bbox'] is False


def test_weights_file_takes_its_shape_from_flags_json(digits_run, caplog):
    caplog.set_level(logging.INFO, logger='absl')
    folder = pathlib.Path(digits_run[0]) / 'models' / 'digits-False'
    # none of the shape flags given: the run's 32 px, 1 channel, --filters=256 come from flags.json
    generator = model.load_generator(str(folder / 'Generator.weights.h5'), 3, 64, 100, 1024,
                                     given=[])
    assert generator.output_shape == (None, 32, 32, 1)
    assert 'from {}'.format(folder / 'flags.json') in caplog.text and '--filters=256' in caplog.text
    # the weights are the trained generator's (generator.keras is the average: --ema)
    exported = model.load_generator(str(folder / 'generator_raw.keras'), 1, 32, 100)
    z = np.random.default_rng(0).normal(size=(2, 100)).astype(np.float32)
    np.testing.assert_allclose(generator(z, training=False), exported(z, training=False),
                               atol=1e-6)


# ----------------------------------------------------------------------------- the docs

ABSL_FLAGS = {'help', 'helpshort', 'helpfull', 'helpxml', 'verbosity', 'v', 'logtostderr',
              'alsologtostderr', 'log_dir', 'flagfile', 'undefok'}


def defined_flags(script):
    """The flags a script defines (its config class's fields, or its own DEFINE_ calls for the
    tools), and those of the entry points it imports (convert_tfrecord's for tools/bench_convert)."""
    import config
    source = open(os.path.join(ROOT, script)).read()
    names = set(re.findall(r"DEFINE_\w+\(\s*'(\w+)'", source))
    for name in re.findall(r'config\.define_flags\(config\.(\w+)', source):
        names |= {config.flag_name(f) for f in dataclasses.fields(getattr(config, name))}
    for module in re.findall(r'^import (\w+)', source, re.M):
        path = os.path.join(ROOT, module + '.py')
        if module != 'config' and os.path.isfile(path) and (
                'DEFINE_' in open(path).read() or 'config.define_flags(' in open(path).read()):
            names |= defined_flags(module + '.py')
    return names


def doc_commands():
    """(file, command) of every python command in the fenced shell blocks of README and docs/."""
    pages = ['README.md'] + sorted('docs/' + p for p in os.listdir(os.path.join(ROOT, 'docs'))
                                   if p.endswith('.md'))
    found = []
    for page in pages:
        text = open(os.path.join(ROOT, page)).read()
        for block in re.findall(r'```(?:sh|bash)\n(.*?)```', text, re.S):
            for line in block.replace('\\\n', ' ').splitlines():
                line = re.sub(r'\s#.*$', '', line).strip()
                for part in re.split(r'&&|;|\|', line):
                    words = part.split()
                    while words and '=' in words[0] and not words[0].startswith('-'):
                        words = words[1:]  # VAR=value before the command
                    if words and words[0].endswith(('python', 'python3')) and words[1:]:
                        found.append((page, words))
    return found


def test_the_quick_start_of_the_readme_is_the_one_messages_suggest():
    import dataset
    readme = open(os.path.join(ROOT, 'README.md')).read()
    first_block = re.search(r'```sh\n(.*?)```', readme, re.S).group(1)
    assert 'pip install -q -r requirements.txt && .venv/bin/python ' + ' '.join(
        dataset.QUICK_START) in first_block


def test_every_documented_command_names_a_real_script_and_real_flags():
    commands = doc_commands()
    assert len(commands) > 30
    for page, words in commands:
        if words[1] == '-m':
            if words[2] in ('venv', 'pytest', 'pip', 'http.server'):
                continue
            script = words[2].replace('.', '/') + '.py'
            args = words[3:]
        else:
            script, args = words[1], words[2:]
        assert words[0] in ('python3', '.venv/bin/python'), (page, ' '.join(words))
        assert os.path.isfile(os.path.join(ROOT, script)), (page, ' '.join(words))
        known = defined_flags(script) | ABSL_FLAGS
        for arg in args:
            if arg.startswith('--'):
                name = arg[2:].split('=', 1)[0]
                assert name in known or (name.startswith('no') and name[2:] in known), \
                    (page, ' '.join(words), name)


def test_every_test_the_reliability_page_cites_exists():
    # a cell names tests as `test_file::test_name`, and further ones of the same file by name
    text = open(os.path.join(ROOT, 'docs', 'reliability.md')).read()
    cited = []
    for line in text.splitlines():
        for cell in line.split('|'):
            module = None
            for name in re.findall(r'`(test_\w+(?:::test_\w+)?)`', cell):
                if '::' in name:
                    module, name = name.split('::')
                assert module, (line, name)
                cited.append((module, name))
    assert len(cited) > 40
    for module, name in cited:
        source = open(os.path.join(ROOT, 'tests', module + '.py')).read()
        assert re.search(r'^def {}\('.format(name), source, re.M), (module, name)


@pytest.mark.slow
def test_digit_features_tool_makes_the_offline_feature_model(tmp_path):
    out = tmp_path / 'features.keras'
    result = subprocess.run([sys.executable, '-m', 'tools.digit_features', '--out=' + str(out),
                             '--classifier_epochs=4'],
                            capture_output=True, text=True, env=script_env(), cwd=ROOT,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    accuracy = float(re.search(r'a digit classifier, ([\d.]+)% right', result.stdout).group(1))
    assert accuracy > 85
    import keras
    features, probabilities = keras.models.load_model(out)(np.zeros((2, 32, 32, 1), np.float32))
    assert features.shape == (2, 64) and probabilities.shape == (2, 10)
    assert not os.path.exists(os.path.join(ROOT, 'docs', 'digit_features.keras'))
