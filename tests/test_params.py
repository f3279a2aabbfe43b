"""The network's flags and params.ini (modelzoo/params.py): names, types and defaults of the original, parsing, the
original's TF1 params.ini."""

import pytest

from modelzoo.params import ModelParams, read_params_ini, write_params_ini
from modelzoo.seqencmodel import main
from tests.builders import ORIGINAL_PARAMS_INI
from utils.cli import UserError


def test_flag_syntax_booleans_tuples_and_defaults(tmp_path):
    main(["--modelfolder", str(tmp_path), "--bidirectional", "False", "--peephole", "--convcell", "lstm",
          "--convrnn_kernel", "5,5", "--classkernel", "[1, 1]", "--convrnn_filters", "4", "--separate_weights", "true"])
    params = read_params_ini(tmp_path / "params.ini")
    assert params.bidirectional is False and params.peephole is True and params.separate_weights is True
    assert params.convrnn_kernel == (5, 5) and params.classkernel == (1, 1)
    assert params.learning_rate == 0.01 and params.epsilon == 0.9 and params.convrnn_layers == 1
    summary = (tmp_path / "model.txt").read_text()
    assert "convrnn1/rnn/conv_lstm_cell/W_ci" in summary and "/bw/" not in summary


def test_defaults_equal_the_original_flags():
    params = ModelParams()
    assert params.as_dict() == {
        "modelfolder": None, "kernel": (1, 3, 3), "classkernel": (3, 3), "cnn_activation": "leaky_relu",
        "bidirectional": True, "convrnn_compression_filters": -1, "convcell": "gru", "convrnn_kernel": (3, 3),
        "convrnn_filters": 24, "recurrent_dropout_i": 1.0, "recurrent_dropout_c": 1.0, "convrnn_layers": 1,
        "peephole": False, "convrnn_normalize": True, "aggr_strat": "state", "learning_rate": 0.01, "beta1": 0.9,
        "beta2": 0.999, "epsilon": 0.9,
        "expected_datatypes": "(tf.float32, tf.float32, tf.float32, tf.float32, tf.float32, tf.int64)",
        "pix10m": 24, "num_bands_10m": 4, "num_bands_20m": 6, "num_bands_60m": 3, "num_classes": 17,
        "swap_memory": True, "separate_weights": False,
    }
    assert params.input_channels == 15


def test_params_ini_round_trip(tmp_path):
    params = ModelParams(modelfolder="models/x", convcell="lstm", convrnn_filters=64, convrnn_kernel=(5, 3),
                         bidirectional=False, peephole=True, recurrent_dropout_i=0.75, learning_rate=1e-3,
                         convrnn_layers=2, separate_weights=True, cnn_activation="relu")
    write_params_ini(tmp_path / "params.ini", params)
    assert read_params_ini(tmp_path / "params.ini") == params
    assert [p.name for p in tmp_path.iterdir()] == ["params.ini"]  # no temporary file left behind


def test_reads_an_original_tf1_params_ini(tmp_path):
    path = tmp_path / "params.ini"
    path.write_text(ORIGINAL_PARAMS_INI)
    params = read_params_ini(path)
    assert params == ModelParams(modelfolder="/data/models/convlstm256_48px", convcell="lstm", convrnn_filters=256,
                                 pix10m=48)
    assert params.kernel == (1, 3, 3) and params.classkernel == (3, 3) and params.separate_weights is False


@pytest.mark.parametrize("line,message", [
    ("convcell = rnn", "--convcell: 'rnn' is not one of gru, lstm"),
    ("aggr_strat = avg_output", "--aggr_strat: 'avg_output' is not supported"),
    ("convrnn_filters = 25.5", "--convrnn_filters: expected an integer, got '25.5'"),
    ("classkernel = (3,", "--classkernel: expected a tuple of positive integers"),
    ("bidirectional = yes please", "--bidirectional: expected True or False"),
])
def test_bad_params_ini_names_the_file_and_the_flag(tmp_path, line, message):
    path = tmp_path / "params.ini"
    key = line.split(" = ")[0]
    path.write_text("\n".join(row if not row.startswith(f"{key} = ") else line
                              for row in ORIGINAL_PARAMS_INI.splitlines()))
    with pytest.raises(UserError) as error:
        read_params_ini(path)
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)


def test_unreadable_params_ini_files(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        read_params_ini(tmp_path / "missing.ini")
    (tmp_path / "nosection.ini").write_text("convcell = gru\n")
    with pytest.raises(UserError, match="nosection.ini: not a params.ini file"):
        read_params_ini(tmp_path / "nosection.ini")
    (tmp_path / "other.ini").write_text("[model]\nconvcell = gru\n")
    with pytest.raises(UserError, match=r"other.ini: no \[flags\] section"):
        read_params_ini(tmp_path / "other.ini")
