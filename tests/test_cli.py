from PIL import Image
from typer.testing import CliRunner

from plategen import __version__
from plategen.cli import app

runner = CliRunner()


def test_version_and_help():
    assert __version__ in runner.invoke(app, ["--version"]).output
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "inspect" in result.output


def test_inspect_prints_counts_and_writes_a_contact_sheet(tmp_path, data_dir):
    sheet = tmp_path / "sheet.png"
    result = runner.invoke(app, ["inspect", str(data_dir / "ccpd-crops"), "--sheet", str(sheet)])
    assert result.exit_code == 0, result.output
    assert "plates read" in result.output and "皖" in result.output
    assert str(sheet) in result.output.replace("\n", "")
    image = Image.open(sheet)
    assert image.width > 32 * 10 and image.height >= 32 * 20  # one row per class


def test_inspect_of_a_missing_folder_is_one_clear_line(tmp_path):
    result = runner.invoke(app, ["inspect", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "nope: no such data folder" in result.output
    assert "Traceback" not in result.output
    assert not list(tmp_path.iterdir())  # nothing half-written
