"""`python -m app` follows Gradio's conventions: GRADIO_SERVER_NAME / GRADIO_SERVER_PORT set the
host and port; a flag wins over the variable, the variable over the default (loopback, 7860)."""
import socket

import pytest

from app.__main__ import parse_args
from app.loadtest import free_port, start_server, stop_server, wait_ready


def test_defaults_are_loopback_and_7860():
    config = parse_args([], environ={})
    assert (config.host, config.port) == ("127.0.0.1", 7860)


def test_the_environment_sets_host_and_port():
    config = parse_args([], environ={"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "7947"})
    assert (config.host, config.port) == ("0.0.0.0", 7947)


def test_flags_win_over_the_environment():
    env = {"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "7947"}
    config = parse_args(["--host", "127.0.0.1", "--port", "8001"], environ=env)
    assert (config.host, config.port) == ("127.0.0.1", 8001)
    assert parse_args(["--port", "8001"], environ=env).host == "0.0.0.0"  # each field on its own


@pytest.mark.parametrize("bad", ["http", "0", "70000", "-1"])
def test_a_bad_port_variable_is_a_clear_error(bad, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args([], environ={"GRADIO_SERVER_PORT": bad})
    assert exit_.value.code == 2 and "GRADIO_SERVER_PORT" in capsys.readouterr().err


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_the_real_process_takes_its_port_from_the_environment_and_a_flag_over_it(clip_model_dir, tmp_path):
    by_env, by_flag = free_port(), free_port()
    env = {"GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(by_env)}
    server = start_server(clip_model_dir, None, "--threads", "1", log_path=tmp_path / "env.log", env=env)
    try:
        wait_ready(f"http://127.0.0.1:{by_env}/", server, timeout_s=90)
    finally:
        stop_server(server)
    server = start_server(clip_model_dir, None, "--threads", "1", "--port", str(by_flag), log_path=tmp_path / "flag.log", env=env)
    try:
        wait_ready(f"http://127.0.0.1:{by_flag}/", server, timeout_s=90)
        assert not _listening(by_env)
    finally:
        stop_server(server)
