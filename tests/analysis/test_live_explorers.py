"""The live workbench in a real browser: JupyterLab (the server ``make lab`` starts) on a CI-sized run, the analysis
notebook run from the Run menu in headless Chromium, then the beam explorer and the FSM viewer driven like a
researcher drives them. What they show must be exactly what ``generate_items`` / the rankable FSM give for those
settings, computed here with the same model (tables print 4 significant digits)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from browser import CHROMIUM, CHROMIUM_ARGS, needs_chromium
from conftest import CI_PROFILE, ROOT

pytestmark = [pytest.mark.browser, needs_chromium]

# CI-sized and smaller: one GNN, a short RQ-VAE, 60 users' LM windows, 20 evaluated users, a small t-SNE sample.
SHRINK = {"gnn.models": ["lightgcn"], "evaluation.scorers": ["lightgcn"], "evaluation.fuse": None,
          "semantic_ids.rqvae.epochs": 10,
          "lm.max_users": 60, "evaluation.max_users": 20, "evaluation.alpha_grid": [0.0, 0.5, 1.0],
          "analysis.explorer_users": 4, "analysis.tsne_items": 60, "analysis.tsne_perplexity": 10.0}
TIMEOUT_MS = 240_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fmt(v: float) -> str:
    v = float(v)
    return "—" if np.isnan(v) else f"{v:.4g}"     # agrec.analysis.explorer._html_table's number format


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The stages 01-05 of a CI-sized run, in this process (no kernels: faster than papermill)."""
    from agrec.data.stage import prepare_data
    from agrec.decode.stage import evaluate_decoding
    from agrec.gnn.stage import run_gnn_stage
    from agrec.lm.stage import train_lm
    from agrec.semantic_ids.stage import prepare_semantic_ids
    from agrec.run.session import open_session

    tmp = tmp_path_factory.mktemp("live")
    ov = {**SHRINK, "pipeline.runs_dir": str(tmp / "runs"), "pipeline.reports_dir": str(tmp / "reports")}
    session = open_session(CI_PROFILE, overrides=ov, report_dir=tmp / "stage_reports")
    prepare_data(session)
    prepare_semantic_ids(session, progress=False)
    run_gnn_stage(session, progress=False)
    train_lm(session, log=lambda s: None)
    evaluate_decoding(session, log=lambda s: None)
    return tmp, ov


@pytest.fixture(scope="module")
def inputs(run):
    """The analysis inputs (model, GNN, trie, histories) the notebook will load, loaded here too."""
    from agrec.analysis import stage as A
    from agrec.run.session import open_session

    tmp, ov = run
    session = open_session(CI_PROFILE, overrides=ov, report_dir=tmp / "expected_report")
    return A.gather_inputs(session, log=lambda s: None)


@pytest.fixture(scope="module")
def lab(run):
    """A JupyterLab server (agrec.run.lab.server_command, as `make lab`) on the run's lab copies; shut down after."""
    from agrec.run.lab import prepare_lab, server_command

    tmp, ov = run
    root = prepare_lab(CI_PROFILE, dest=tmp / "lab", overrides=ov)
    home = tmp / "home"
    env = {**os.environ, "HOME": str(home), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_DATA_DIR": str(home / "data"),
           "IPYTHONDIR": str(home / "ipython"), "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
           "PYTHONPATH": os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
    # Every cell in the DOM (no windowing), so cell errors anywhere in the notebook can be checked.
    tracker = home / "settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True, exist_ok=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    port = _free_port()
    log = open(tmp / "jupyterlab.log", "wb")
    proc = subprocess.Popen(server_command(root, port), env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)   # its own process group: the kernels go down with it
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not start:\n{(tmp / 'jupyterlab.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield url, proc
    finally:
        tree = _descendants(proc.pid)     # the kernels run in their own sessions: found by parentage, not group
        proc.send_signal(signal.SIGINT)   # jupyter_server shuts its kernels down on SIGINT x2 / SIGTERM
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        _assert_gone(tree)


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of a live process, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (None if fields[0] == "Z" else (int(fields[1]), fields[19]))


def _descendants(root: int) -> dict[int, str]:
    """``{pid: start time}`` of every process below ``root`` (the server's kernels and their children)."""
    children: dict[int, list[int]] = {}
    started: dict[int, str] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and (st := _stat(int(d.name))) is not None:
            children.setdefault(st[0], []).append(int(d.name))
            started[int(d.name)] = st[1]
    out, todo = {}, [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out[c] = started[c]
            todo.append(c)
    return out


def _assert_gone(tree: dict[int, str]) -> None:
    """None of ``tree`` (pid -> start time, so a reused pid is not mistaken for it) is still running."""
    deadline = time.monotonic() + 20
    while True:
        left = [pid for pid, t in tree.items() if (st := _stat(pid)) is not None and st[1] == t]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == [], f"processes started by the JupyterLab server still running: {left}"


def _wait_kernel_idle(url: str, timeout_s: float = 120) -> None:
    """Until the notebook's kernel exists and is idle (jupyter_server's REST API)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        kernels = json.loads(urllib.request.urlopen(f"{url}/api/kernels", timeout=5).read())
        if kernels and all(k["execution_state"] == "idle" for k in kernels):
            return
        time.sleep(0.5)
    raise TimeoutError("the notebook's kernel did not become idle")


def _rows(page, selector: str) -> list[list[str]]:
    """Cell texts of the (first) table under ``selector``, body rows only (visible or not)."""
    return page.eval_on_selector(selector, """el => Array.from(el.querySelectorAll('table tbody tr')).map(
        tr => Array.from(tr.querySelectorAll('td')).map(td => td.textContent.trim()))""")


def _header(page, selector: str) -> list[str]:
    return page.eval_on_selector(selector, """el => Array.from(el.querySelectorAll('table thead th')).map(
        th => th.textContent.trim())""")


def _set_readout(page, selector: str, value) -> None:
    """Type a value into a slider's editable readout (what a user does for an exact value)."""
    readout = page.locator(f"{selector} .widget-readout")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(str(value))
    page.keyboard.press("Enter")


def _wait_view(page, selector: str, label: str) -> None:
    page.wait_for_function("([sel, label]) => { const e = document.querySelector(sel + ' .agrec-view'); "
                           "return e !== null && e.textContent === label; }", arg=[selector, label],
                           timeout=TIMEOUT_MS)


def _expected_decode(inp, user: int, alpha: float, top_n: int, beam_size: int):
    from agrec.decode.beam import generate_items
    from agrec.decode.rank import top_n_items

    hist = inp.history(user)
    ex = [hist] if inp.session_exclude else None
    with torch.no_grad():
        scores = inp.gnn.full_sort_predict(torch.as_tensor([user], dtype=torch.long)).float().cpu()
    cfg = dataclasses.replace(inp.agrec_settings, alpha=float(alpha), top_n=int(top_n), beam_size=int(beam_size))
    fsm = top_n_items(scores, top_n, ex) if cfg.uses_graph else None
    torch.set_num_threads(1)   # as the explorer decodes one user
    return generate_items(inp.bundle.model, [inp.bundle.prompt_ids(hist)], inp.trie, fsm_inputs=fsm, cfg=cfg,
                          exclude=ex, trace=True, pad_token_id=inp.bundle.pad_token_id), scores


def _check_beams(page, inp, user, alpha, top_n, beam_size, n_show):
    res, _ = _expected_decode(inp, user, alpha, top_n, beam_size)
    items, scores = res.items[0].numpy(), res.scores[0].numpy()
    ok = items >= 0
    beams = _rows(page, ".agrec-beam-beams")
    head = _header(page, ".agrec-beam-beams")
    assert [int(r[head.index("item")]) for r in beams] == items[ok].tolist()
    assert [r[head.index("score")] for r in beams] == [_fmt(s) for s in scores[ok]]
    steps = _rows(page, ".agrec-beam-steps")
    head = _header(page, ".agrec-beam-steps")
    tr = res.trace
    want = [(b + 1, lvl + 1, _fmt(tr.p_llm[0, b, lvl]), _fmt(tr.p_g[0, b, lvl]), _fmt(tr.p_hat[0, b, lvl]))
            for b in range(min(n_show, len(items))) if items[b] >= 0 for lvl in range(tr.tokens.shape[-1])]
    got = [(int(r[head.index("rank")]), int(r[head.index("level")]), r[head.index("p_LLM")], r[head.index("p_G")],
            r[head.index("p_hat")]) for r in steps]
    assert got == want
    return items[ok].tolist(), got


def _expected_tree(inp, user: int, top_n: int, tau: float, labels) -> list[tuple[str, str]]:
    """(prefix label, p_G) of every node of the user's FSM, shallow first, straight from RankableFSM."""
    from agrec.decode.fsm import RankableFSM
    from agrec.decode.rank import top_n_items

    _, scores = _expected_decode(inp, user, 0.0, top_n, 1)
    hist = inp.history(user)
    items, sc = top_n_items(scores, top_n, [hist] if inp.session_exclude else None)
    s = inp.agrec_settings
    fsm = RankableFSM.build(inp.trie, items, sc, tau=tau, agg=s.agg, state="prefix", floor=s.floor)
    toks = torch.as_tensor(inp.bundle.item_token_ids)                    # [n_items, L] vocabulary ids
    prefixes = set()
    for i in items[0].tolist():
        if i < 0:
            continue
        code = [int(t) for t in toks[i].tolist()]
        prefixes.update(tuple(code[:d]) for d in range(1, len(code) + 1))
    out = []
    for p in sorted(prefixes, key=lambda p: (len(p), p)):
        dist = fsm.distribution(0, list(p[:-1])) or {}
        out.append(("".join(labels.get(t, str(t)) for t in p), _fmt(dist.get(p[-1], float("nan")))))
    return out


def test_live_explorers_in_jupyterlab(lab, inputs):
    from playwright.sync_api import sync_playwright

    url, server = lab
    inp = inputs
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1200})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{url}/lab/tree/06_analysis.ipynb")
            page.wait_for_selector(".jp-Notebook .jp-Cell")
            _wait_kernel_idle(url)
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
            page.wait_for_selector(".agrec-beam-explorer .agrec-beam-beams table")
            page.wait_for_selector(".agrec-fsm-viewer .agrec-fsm-nodes table")
            # every cell ran, none failed
            page.wait_for_function("""() => { const ps = Array.from(document.querySelectorAll(
                '.jp-CodeCell .jp-InputArea-prompt')).map(e => e.textContent);
                return ps.length > 0 && ps.every(t => /\\[\\d+\\]/.test(t)); }""")
            assert page.locator("[data-mime-type='application/vnd.jupyter.error']").count() == 0

            s = inp.agrec_settings
            n_show = 10                                                  # the notebook's n_case_beams
            users = [int(v) for v in page.eval_on_selector_all(".agrec-beam-user select option",
                                                               "os => os.map(o => o.value)")]
            start = int(page.eval_on_selector(".agrec-beam-user select", "e => e.value"))
            a_chosen = float(s.alpha_at(0))
            label = lambda u, a, b: f"user={u} · alpha={a:g} · top_n={s.top_n} · mix={s.mix} · beam_size={b}"  # noqa
            _wait_view(page, ".agrec-beam-status", label(start, a_chosen, s.beam_size))

            # 1. another user (at the chosen α)
            user = next(u for u in users if u != start)
            page.select_option(".agrec-beam-user select", str(user))
            _wait_view(page, ".agrec-beam-status", label(user, a_chosen, s.beam_size))
            _check_beams(page, inp, user, a_chosen, s.top_n, s.beam_size, n_show)
            # 2. α from 0 to the chosen value (0.5 if validation chose 0): the LM alone, then steered
            a_to = a_chosen if a_chosen > 0 else 0.5
            _set_readout(page, ".agrec-beam-alpha", 0)
            _wait_view(page, ".agrec-beam-status", label(user, 0.0, s.beam_size))
            items0, steps0 = _check_beams(page, inp, user, 0.0, s.top_n, s.beam_size, n_show)
            assert all(r[3] == "—" for r in steps0)                     # α = 0: no p_G anywhere
            _set_readout(page, ".agrec-beam-alpha", a_to)
            _wait_view(page, ".agrec-beam-status", label(user, a_to, s.beam_size))
            items_a, steps_a = _check_beams(page, inp, user, a_to, s.top_n, s.beam_size, n_show)
            assert steps_a != steps0 and any(r[3] != "—" for r in steps_a)
            # 3. a narrower beam
            _set_readout(page, ".agrec-beam-beam-size", 5)
            _wait_view(page, ".agrec-beam-status", label(user, a_to, 5))
            items5, _ = _check_beams(page, inp, user, a_to, s.top_n, 5, n_show)
            assert len(items5) == 5

            # FSM viewer: choose a user -> the nodes table shows that user's tree with the FSM's p_G
            fsm_user = next(u for u in users if u != int(page.eval_on_selector(".agrec-fsm-user select",
                                                                               "e => e.value")))
            page.select_option(".agrec-fsm-user select", str(fsm_user))
            page.wait_for_function("(u) => { const e = document.querySelector('.agrec-fsm-status .agrec-view'); "
                                   "return e !== null && e.textContent.startsWith(`user=${u} ·`); }", arg=fsm_user)
            head = _header(page, ".agrec-fsm-nodes")
            got = [(r[head.index("prefix")], r[head.index("p_G")]) for r in _rows(page, ".agrec-fsm-nodes")]
            want = _expected_tree(inp, fsm_user, s.top_n, s.tau, inp.labels or {})
            assert got == want and len(got) > s.top_n                    # every prefix of the top-n items
            assert errors == []
            # the notebook's kernel runs under the server (the fixture checks that it is gone after shutdown)
            assert any("ipykernel" in Path(f"/proc/{pid}/cmdline").read_text() for pid in _descendants(server.pid))
        finally:
            browser.close()
