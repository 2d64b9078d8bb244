"""One registry handle per flow run and URL, closed when the block ends."""

from __future__ import annotations

from tasks.registry_handle import open_registry, registry_for


def test_tasks_share_the_open_handle_and_it_closes(tmp_path, monkeypatch):
    from registry.core import Registry

    closed: list = []
    real_close = Registry.close
    monkeypatch.setattr(Registry, "close", lambda self: (closed.append(self), real_close(self)))
    url = f"sqlite:///{tmp_path / 'one.db'}"
    with open_registry(url) as handle:
        assert registry_for(url) is handle
        with open_registry(url) as inner:  # nested: the same handle, closed by the outer block
            assert inner is handle
        assert closed == []
    assert closed == [handle]
    other = registry_for(url)  # outside a flow block: one handle per process and URL
    assert other is not handle and registry_for(url) is other
