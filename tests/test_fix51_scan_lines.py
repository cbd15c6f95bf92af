"""The command line's sensitivity-scan lines ignore the scan's keep-alives (accuracy None, about every second inside
a long setting, 0b12b79): they printed 'sensitivity scan: 0/189 settings' and repeated the last tenth's line."""

from compress_engine.playground import cli


def test_scan_lines_print_each_tenth_once_and_nothing_for_keep_alives(capsys):
    show = cli.scan_lines()
    show(0, 20, None, None)  # a keep-alive before the first setting
    for step in range(1, 21):
        show(step, 20, None, 0.5)
        show(step, 20, None, None)  # keep-alives inside the next setting
        show(step, 20, None, None)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"sensitivity scan: {s}/20 settings" for s in range(2, 21, 2)]
