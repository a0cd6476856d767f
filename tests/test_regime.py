import pytest

from harness import settings
from harness.settings import Recipe, Window
from harness.store import RunStore
from reports import regime

TINY = settings.get("digits-mlp").replace(
    recipe=Recipe(epochs=2, batch_size=64, lr_halving_every=1, window=Window(epochs=1, per_epoch=10)))


def test_window_text_names_epochs_rate_and_snapshots():
    assert regime.window_text(settings.get("digits-mlp").recipe) == "epochs 13-16 at lr/8, 3 per epoch (12)"
    assert regime.window_text(settings.get("cifar10-resnet20").recipe) == "epochs 31-40 at lr/8, epoch ends (10)"
    assert regime.window_text(Recipe(epochs=3)) == "none"


def test_regime_row_measures_accuracy_cosine_and_resolution(tmp_path):
    runs = RunStore(tmp_path).get_or_train(TINY, [0, 1], device="cpu")
    row = regime.regime_row(TINY, runs)
    assert len(row) == len(regime.HEADER)
    assert row[0] == "digits-mlp (2 seeds)" and row[3] == "2, lr halved every 1"
    accuracy = float(row[1].rstrip("%")) / 100
    assert 0.5 < accuracy <= 1 and 0 < float(row[2]) < 1
    assert row[4] == "epochs 2-2 at lr/2, 10 per epoch (10)" and row[5] == "8 (ensembles), 8 (plane)"
    assert row[6].startswith("540: ") and row[6].endswith(" points")
    table = regime.markdown([regime.PAPER_ROW, row]).splitlines()
    assert len(table) == 4 and table[2].startswith("| paper: [WB] SmallCNN")


@pytest.mark.parametrize("argv, message", [(["--seeds", "0"], "--seeds 0 is invalid"),
                                           (["no-such-setting"], "unknown setting 'no-such-setting'")])
def test_bad_arguments_exit_2_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        regime.main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
