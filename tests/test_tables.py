"""The one CSV reader of the datasets: pandas-compatible tables, problems named by file and line."""
from __future__ import annotations

import pytest

from my_affectgpt.common.errors import UserError
from my_affectgpt.datasets.tables import CSVFileError, read_csv, read_rows, read_table


def test_reads_what_pandas_reads(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes('\ufeffname , reason\na,"one, two"\n\nb,"line\none"\nc\nd,x,,\n'.encode("utf-8"))
    frame = read_csv(path, ["name", "reason"])
    assert list(frame.columns) == ["name", "reason"]  # BOM and header spaces dropped
    assert frame.to_dict("records") == [
        {"name": "a", "reason": "one, two"}, {"name": "b", "reason": "line\none"},
        {"name": "c", "reason": ""},  # a short row: missing cells are empty
        {"name": "d", "reason": "x"},  # empty trailing cells carry nothing
    ]
    assert [row.line for row in read_rows(path, ["name"])] == [2, 4, 6, 7]  # blank line skipped


def test_problems_name_the_file_and_the_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("name,name\na,b\n")
    with pytest.raises(CSVFileError, match="t.csv, line 1: column 'name' appears twice in the header"):
        read_table(path)
    path.write_text('name,reason\na,"say "hi" now"\n')
    with pytest.raises(CSVFileError, match=r"t.csv, line 2: .*double the quotes inside it"):
        read_table(path)
    path.write_text("name,reason\n../x,r\n")
    with pytest.raises(ValueError, match=r"t.csv, line 2: sample name '../x' contains a path separator"):
        read_rows(path, ["name"])
    path.write_text("name\n")
    with pytest.raises(UserError, match="t.csv: the CSV has a header but no rows"):
        read_rows(path, ["name"])
    with pytest.raises(UserError, match=r"t.csv: missing column\(s\) reason; found name"):
        read_rows(path, ["name", "reason"])
    with pytest.raises(FileNotFoundError, match="absent.csv: file not found"):
        read_rows(tmp_path / "absent.csv", ["name"])
