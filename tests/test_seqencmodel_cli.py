"""The flags (modelzoo/params.py), params.ini and the command line of modelzoo/seqencmodel.py."""

import configparser
import subprocess
import sys
from pathlib import Path

import pytest

from modelzoo.params import ModelParams, read_params_ini, write_params_ini
from modelzoo.seqencmodel import main
from utils.cli import UserError, run

REPO = Path(__file__).resolve().parents[1]

# a params.ini as the original TF 1.7 code wrote it: absl and TF internal flags mixed in
ORIGINAL_PARAMS_INI = """[flags]
logtostderr = False
alsologtostderr = False
log_dir =
v = -1
verbosity = -1
stderrthreshold = fatal
showprefixforinfo = True
run_with_pdb = False
pdb_post_mortem = False
run_with_profiling = False
profile_file = None
use_cprofile_for_profiling = True
only_check_args = False
? = False
help = False
helpshort = False
helpfull = False
helpxml = False
h = False
modelfolder = /data/models/convlstm256_48px
kernel = (1,3,3)
classkernel = (3,3)
cnn_activation = leaky_relu
bidirectional = True
convrnn_compression_filters = -1
convcell = lstm
convrnn_kernel = (3,3)
convrnn_filters = 256
recurrent_dropout_i = 1.0
recurrent_dropout_c = 1.0
convrnn_layers = 1
peephole = False
convrnn_normalize = True
aggr_strat = state
learning_rate = 0.01
beta1 = 0.9
beta2 = 0.999
epsilon = 0.9
expected_datatypes = (tf.float32, tf.float32, tf.float32, tf.float32, tf.float32, tf.int64)
pix10m = 48
num_bands_10m = 4
num_bands_20m = 6
num_bands_60m = 3
num_classes = 17
swap_memory = True
test_srcdir =
test_tmpdir = /tmp/absl_testing
log_format = %(asctime)s %(message)s
"""


def run_script(*args, cwd=REPO):
    return subprocess.run([sys.executable, "modelzoo/seqencmodel.py", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_readme_invocation_writes_params_ini_and_summary(tmp_path):
    folder = tmp_path / "missing" / "parents" / "convgru128"
    result = run_script("--modelfolder", str(folder), "--convrnn_filters", "128", "--convcell", "gru",
                        "--num_classes", "17", "--pix10m", "24")
    assert result.returncode == 0, result.stderr
    assert "534,178 trainable parameters" in result.stdout
    config = configparser.ConfigParser(interpolation=None)
    config.read(folder / "params.ini")
    flags = config["flags"]
    assert (flags["convrnn_filters"], flags["convcell"], flags["num_classes"], flags["pix10m"]) == ("128", "gru",
                                                                                                   "17", "24")
    assert (flags["epsilon"], flags["learning_rate"], flags["bidirectional"]) == ("0.9", "0.01", "True")
    assert flags["convrnn_kernel"] == "(3, 3)" and flags["separate_weights"] == "False"
    assert read_params_ini(folder / "params.ini") == ModelParams(modelfolder=str(folder), convrnn_filters=128)
    summary = (folder / "model.txt").read_text().splitlines()
    assert "trainable parameters: 534,178" in summary
    assert "non-trainable parameters: 34" in summary
    kernel = next(line for line in summary if line.startswith("convrnn1/bidirectional_rnn/fw/conv_gru_cell/gates/"
                                                              "kernel "))
    assert kernel.split()[1:] == ["3x3x143x256", "329,472"]
    assert any(line.startswith("class/bn/moving_variance ") and line.endswith("(not trainable)") for line in summary)
    assert sorted(p.name for p in folder.iterdir()) == ["model.txt", "params.ini"]


def test_bad_flag_exits_2_with_one_line_and_no_traceback(tmp_path):
    result = run_script("--modelfolder", str(tmp_path / "m"), "--convcell", "rnn")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "seqencmodel.py: error: --convcell: 'rnn' is not one of gru, lstm"
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("argv,message", [
    (["--convcell", "rnn"], "--convcell: 'rnn' is not one of gru, lstm"),
    (["--aggr_strat", "avg_output"], "--aggr_strat: 'avg_output' is not supported"),
    (["--convrnn_filters", "many"], "--convrnn_filters: expected an integer, got 'many'"),
    (["--convrnn_kernel", "(4,4)"], "--convrnn_kernel: (4, 4) must be two odd sizes"),
    (["--bidirectional", "maybe"], "--bidirectional: expected True or False, got 'maybe'"),
    (["--recurrent_dropout_i", "0"], "--recurrent_dropout_i: a keep probability must be in (0, 1]"),
    (["--cnn_activation", "elu"], "--cnn_activation: 'elu' is not one of relu, leaky_relu"),
    (["--epsilon", "inf"], "--epsilon: expected a finite number, got 'inf'"),
    (["--learning_rate", "-0.1"], "--learning_rate: must be > 0, got -0.1"),
    (["--no_such_flag", "1"], "unrecognized arguments: --no_such_flag 1"),
    ([], "--modelfolder is required"),
])
def test_bad_flags_are_one_line_errors(tmp_path, capsys, argv, message):
    folder = ["--modelfolder", str(tmp_path / "m")] if argv else []
    with pytest.raises(SystemExit) as exit_info:
        run(main, folder + argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err
    assert not (tmp_path / "m").exists()


def test_unwritable_model_folder_is_a_one_line_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SystemExit) as exit_info:
        run(main, ["--modelfolder", str(blocker / "model")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{blocker / 'model'}: cannot write the model folder" in err


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
