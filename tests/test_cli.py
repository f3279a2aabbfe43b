"""The shared command-line pieces (utils/cli.py): one-line errors, exit status 2, boolean flags, help texts."""

import argparse

import pytest

from utils.cli import ArgumentParser, DefaultsHelpFormatter, UserError, run, str2bool


@pytest.mark.parametrize("text,value", [("True", True), ("true", True), ("1", True), ("yes", True),
                                        ("False", False), ("false", False), ("0", False), ("no", False)])
def test_str2bool(text, value):
    assert str2bool(text) is value


def test_str2bool_rejects_other_text():
    with pytest.raises(argparse.ArgumentTypeError, match="expected True or False"):
        str2bool("maybe")


def test_run_turns_user_errors_into_one_line_and_exit_2(capsys):
    def main(argv):
        raise UserError("data/x.tfrecord.gz: corrupt\n  (details)")

    with pytest.raises(SystemExit) as exit_info:
        run(main)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith("error: data/x.tfrecord.gz: corrupt (details)\n")


def test_argument_parser_errors_are_user_errors():
    parser = ArgumentParser()
    parser.add_argument("--n", type=int)
    with pytest.raises(UserError, match="invalid int value"):
        parser.parse_args(["--n", "x"])


def test_help_names_each_default_once():
    parser = ArgumentParser(prog="x", formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--epochs", type=int, default=1, help="epochs")
    parser.add_argument("--samples", type=int, default=None, help="dates per tile (default: all)")
    parser.add_argument("--gpu", default=None, help="GPUs")
    text = " ".join(parser.format_help().split())
    assert "epochs (default: 1)" in text
    assert "(default: all)" in text and "(default: None)" not in text
    assert text.count("default") == 2


def test_messages_leave_out_tensorflow_internals_and_temporary_names(capsys):
    def main(argv):
        raise UserError("{{function_node __wrapped__IteratorGetNext_output_types_7_device_/job:localhost/replica:0}} "
                        "/data/m/.model.ckpt-4.1234.part.index: disk full [Op:IteratorGetNext] name: ; "
                        "out/.metrics.json.77.k3j_h5g6.part:\n cannot write")

    with pytest.raises(SystemExit) as exit_info:
        run(main, [])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.split(": error: ", 1)[1] == (
        "/data/m/model.ckpt-4.index: disk full name: ; out/metrics.json: cannot write\n")
