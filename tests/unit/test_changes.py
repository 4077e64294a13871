import pytest

from minibox.errors import UsageError
from minibox.image import changes, humanize


def test_cmd_exec_and_shell_forms():
    assert changes.apply({}, ['CMD ["sh"]'])["Cmd"] == ["sh"]
    assert changes.apply({}, ["CMD echo hi"])["Cmd"] == ["/bin/sh", "-c", "echo hi"]
    assert changes.apply({}, ['ENTRYPOINT ["/init", "-v"]'])["Entrypoint"] == ["/init", "-v"]


def test_env_label_expose_volume_user_workdir():
    cfg = changes.apply({"Env": ["A=0"]}, [
        "ENV A=1 B=\"two words\"", "ENV C 3", "LABEL k=v", "EXPOSE 80 53/udp",
        "VOLUME /data /logs", "USER nobody", "WORKDIR /srv", "STOPSIGNAL SIGINT",
    ])
    assert cfg["Env"] == ["A=1", "B=two words", "C=3"]
    assert cfg["Labels"] == {"k": "v"}
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert cfg["Volumes"] == {"/data": {}, "/logs": {}}
    assert (cfg["User"], cfg["WorkingDir"], cfg["StopSignal"]) == ("nobody", "/srv", "SIGINT")


@pytest.mark.parametrize("bad", ["RUN true", "CMD", "EXPOSE 99999", "EXPOSE 80/xyz", "ENV A=1 junk"])
def test_bad_changes(bad):
    with pytest.raises(UsageError, match="invalid change"):
        changes.apply({}, [bad])


def test_humanize():
    assert humanize.size(1982715) == "1.98MB"
    assert humanize.size(999) == "999B"
    assert humanize.size(4_260_000) == "4.26MB"
    assert humanize.size(1_200_000_000) == "1.2GB"
    assert humanize.duration(0.2) == "Less than a second"
    assert humanize.duration(90) == "About a minute"
    assert humanize.duration(3 * 86400) == "3 days"
    assert humanize.duration(20 * 86400) == "2 weeks"
    assert humanize.parse_time("1970-01-01T00:01:00.123456789Z") == 60
    assert humanize.parse_time("1970-01-01T01:00:00+01:00") == 0
    assert humanize.table([["A", "BB"], ["ccc", "d"]]) == "A     BB\nccc   d\n"
