"""A sweep's --ray-address given the dashboard's address (http://HOST:8265, which Ray Jobs take, a common mix-up):
it was read as host "http", and the error said "nothing answers at http://127.0.0.1:8265 within 5 s (Name or service
not known)", as if the head were down. Now an address with a scheme other than ray:// is refused before any work,
in Python and on the command line (exit 2, with its flags' checks), saying which addresses a sweep joins."""

import pytest

import compress_engine as ce
from compress_engine.playground.cli import main

from small_nets import RECIPE, Plain, data


@pytest.mark.parametrize("address", ["http://127.0.0.1:8265", "https://head.example:8265"])
def test_the_dashboards_address_is_refused_saying_what_to_give(address):
    seen = []
    with pytest.raises(ce.CompressError) as e:
        ce.sweep(Plain(), RECIPE, data(), "sparsity", [0.5], ray_address=address, on_point=lambda *a: seen.append(a))
    msg = str(e.value)
    assert repr(address) in msg and "dashboard" in msg and "HOST:PORT" in msg and "'auto'" in msg
    assert "Name or service not known" not in msg and "nothing answers" not in msg and seen == []


def test_the_command_line_refuses_it_with_exit_status_2(capsys):
    code = main(["sweep", "--model", "lenet-5", "--field", "sparsity", "--values", "0.5",
                 "--ray-address", "http://127.0.0.1:8265"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --ray-address 'http://127.0.0.1:8265' is not an address") \
        and "dashboard" in err


def test_ray_client_and_plain_addresses_are_not_refused_by_their_form():
    from compress_engine.playground import sweeps
    for ok in ("auto", "10.0.0.1:6379", "ray://10.0.0.1:10001", "[::1]:6379"):
        sweeps.check_address(ok)
