"""intake_helio.testing: lazy imports, the missing-extra errors and the HelioError hierarchy.

No server is started here: a missing package is simulated with ``sys.modules[name] = None``.
"""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

import intake_helio.testing as testing
from intake_helio.base.errors import HelioError
from intake_helio.testing import errors as testing_errors
from intake_helio.testing.aia import flare_profile, make_aia_frame
from intake_helio.testing.extras import MissingExtraError, require_extra
from intake_helio.testing.fault_proxy import FAULT_KINDS, FaultProxy, FaultRule
from intake_helio.testing.gateway_server import LocalGateway
from intake_helio.testing.local_s3 import LocalS3

S3_MESSAGE = 'LocalS3 needs moto[server]: pip install "intake-helio[demo]"'
GATEWAY_MESSAGE = 'LocalGateway needs dask-gateway-server: pip install "intake-helio[demo]"'


@pytest.fixture
def no_moto(monkeypatch):
    monkeypatch.setitem(sys.modules, "moto", None)
    monkeypatch.setitem(sys.modules, "moto.server", None)


@pytest.mark.parametrize("process", [False, True])
def test_local_s3_without_moto_says_what_to_install(no_moto, process):
    s3 = LocalS3(process=process)
    with pytest.raises(MissingExtraError) as info:
        s3.start()
    assert isinstance(info.value, HelioError) and isinstance(info.value, ImportError)
    assert str(info.value) == S3_MESSAGE
    assert "\n" not in str(info.value)
    assert s3.endpoint_url is None and s3._proc is None and s3._server is None


def test_local_s3_without_moto_server_module(monkeypatch):
    monkeypatch.setitem(sys.modules, "moto.server", None)  # moto itself may be importable
    with pytest.raises(MissingExtraError, match=r"^LocalS3 needs moto\[server\]: pip install"):
        LocalS3().start()


def test_local_gateway_without_dask_gateway_server(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "dask_gateway_server", None)
    gw = LocalGateway(workdir=str(tmp_path / "gw"))
    with pytest.raises(MissingExtraError) as info:
        gw.start()
    assert isinstance(info.value, HelioError) and isinstance(info.value, ImportError)
    assert str(info.value) == GATEWAY_MESSAGE
    assert info.value.name == "dask_gateway_server"
    assert not gw.running and gw.address is None
    assert not (tmp_path / "gw").exists()  # nothing was prepared


def test_require_extra_accepts_installed_modules():
    require_extra("Something", "pytest", "pytest", "json")
    with pytest.raises(MissingExtraError, match="^X needs y: pip install"):
        require_extra("X", "y", "json", "intake_helio_no_such_module_xyz")


def test_importing_testing_modules_imports_no_server_package():
    code = (
        "import sys\n"
        "import intake_helio.testing.demo_data, intake_helio.testing.local_s3\n"
        "import intake_helio.testing.gateway_server, intake_helio.testing.fault_proxy\n"
        "from intake_helio.testing import *\n"
        "bad = [m for m in ('moto', 'dask_gateway_server', 'flask') if m in sys.modules]\n"
        "print(bad)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]", out.stderr


def test_testing_package_exports_resolve_lazily():
    assert sorted(testing.__all__) == sorted(testing._EXPORTS)
    for name in testing.__all__:
        assert getattr(testing, name) is not None
    assert testing.FaultProxy is FaultProxy and testing.LocalS3 is LocalS3
    assert set(testing.__all__) <= set(dir(testing))
    with pytest.raises(AttributeError):
        testing.no_such_name  # noqa: B018


def test_testing_errors_are_helio_errors():
    for name in testing_errors.__all__:
        cls = getattr(testing_errors, name)
        assert issubclass(cls, HelioError), name
        generic = {Exception, BaseException, object}
        assert [b for b in cls.__mro__ if b.__module__ == "builtins" and b not in generic], name
    assert issubclass(MissingExtraError, HelioError) and issubclass(MissingExtraError, ImportError)


@pytest.mark.parametrize(
    ("make", "builtin"),
    [
        (lambda: FaultRule("explode"), ValueError),
        (lambda: FaultRule("status", status=200), ValueError),
        (lambda: FaultRule("status", match="("), ValueError),
        (lambda: FaultRule("status", methods="GET"), TypeError),
        (lambda: FaultProxy("ftp://x"), ValueError),
        (lambda: FaultProxy("http://127.0.0.1:1", [("status",)]), TypeError),
        (lambda: make_aia_frame("2021-01-01", size=4), ValueError),
        (lambda: flare_profile(pd.date_range("2021", periods=2), amplitude=0), ValueError),
    ],
)
def test_bad_arguments_raise_helio_errors(make, builtin):
    with pytest.raises(builtin) as info:
        make()
    assert isinstance(info.value, HelioError)


def test_fault_rules_are_reexported_by_fault_proxy():
    from intake_helio.testing import fault_rules

    assert FaultRule is fault_rules.FaultRule and FAULT_KINDS is fault_rules.FAULT_KINDS


def test_local_s3_storage_options_before_start():
    with pytest.raises(RuntimeError, match="not started") as info:
        LocalS3().storage_options  # noqa: B018
    assert isinstance(info.value, HelioError)
