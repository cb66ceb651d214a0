"""Train the original script's DCGAN on MNIST, scikit-learn's digits or CelebA TFRecords: python main.py [flags]."""
import os
import sys

import interrupts  # noqa: E402

interrupts.guard_start_up()
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # TensorFlow's C++ info lines off by default
from absl import app  # noqa: E402

import config  # noqa: E402
import errors  # noqa: E402

config.define_flags(config.TrainConfig, __name__)


@errors.entry_point
def main(_argv):
    # TensorFlow (5 s) loads here, once the flags are parsed: --help and a mistyped flag answer
    # at once, and Ctrl-C while it loads is the boundary's one-line stop
    import devices
    import trainer
    devices.configure_tensorflow()
    try:
        trainer.train(config.cluster_outputs(config.from_flags(config.TrainConfig), os.environ))
    except trainer.Stopped as e:
        print('Stopped by {}'.format(e), flush=True)
        sys.exit(128 + e.signum)


if __name__ == '__main__':
    app.run(main)
