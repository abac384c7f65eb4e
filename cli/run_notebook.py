"""Executes one Jupyter notebook in the Deno kernel and fails loudly.

Called by `deno task notebooks` (cli/notebooks.ts), which finds a Python
with jupyter_client and registers the kernel first. Usage:

    python3 cli/run_notebook.py IN.ipynb OUT.ipynb [--timeout S] [--env K=V ...]

Why not `jupyter nbconvert --execute`: the Deno 2.9 kernel sometimes sends
`status: idle` before a cell's outputs, and nbconvert stops reading at idle,
so outputs are silently lost. Here every iopub message is routed to its cell
by its parent's msg_id, whenever it arrives; a cell is finished when its
execute_reply has come AND the iopub channel has been quiet for a while; at
the end the channel is drained again. Then every cell is checked:

- an error (execute_reply status or an `error` output) fails the run;
- a cell tagged `image` must hold image/png;
- every picture must be a PNG and only a PNG: nbconvert (and the viewers
  built on it) prefers image/svg+xml to image/png and sanitises untrusted
  SVG, stripping the <g transform> groups that place a figure's panels, so
  an SVG shows as an empty box there even with a PNG beside it;
- every other code cell must hold some output, unless tagged `no-output`.

A cell that should have shown something and holds nothing is reported as a
lost output. On failure OUT is still written (with what was received) so the
failure can be inspected, and the exit status is 1.
"""

import argparse
import json
import os
import queue
import sys
import time

try:
    from jupyter_client.manager import KernelManager
except ImportError:  # pragma: no cover - reported to the user
    sys.stderr.write(
        "run_notebook: jupyter_client is missing. On Debian/Ubuntu: "
        "sudo apt-get install python3-nbclient python3-ipykernel\n"
    )
    sys.exit(3)

IMAGE_TYPES = ("image/png",)
# GAN_* variables that are not notebook parameters (where the datasets are
# read from and cached; NOT_PARAMETERS in cli/notebooks.ts): not recorded.
NOT_PARAMETERS = ("GAN_DATA_DIR", "GAN_CACHE_DIR")
QUIET_S = 1.0  # iopub silence that ends a cell (after its reply)
FINAL_DRAIN_S = 3.0  # silence that ends the run


def cell_source(cell):
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def tags(cell):
    return set(cell.get("metadata", {}).get("tags", []))


class Runner:
    def __init__(self, km, kc, log):
        self.km = km
        self.kc = kc
        self.log = log
        self.outputs = {}  # msg_id -> list of nbformat outputs
        self.idle = set()  # msg_ids whose kernel status went idle
        self.displays = {}  # display_id -> list of outputs showing it
        self.counts = {}  # msg_id -> execution_count
        self.last_message = time.monotonic()

    def progress(self, content):
        """Live displays show progress (a training run's epochs): echo their text."""
        text = content.get("data", {}).get("text/plain")
        if text:
            self.log(f"  live: {text.strip()[:200]}")

    def _add(self, parent, output):
        self.outputs.setdefault(parent, []).append(output)

    def handle(self, msg):
        """Routes one iopub message to the cell that caused it."""
        self.last_message = time.monotonic()
        parent = msg.get("parent_header", {}).get("msg_id")
        kind = msg["msg_type"]
        content = msg["content"]
        if kind == "status":
            if content.get("execution_state") == "idle":
                self.idle.add(parent)
            return
        if kind == "stream":
            outs = self.outputs.setdefault(parent, [])
            if outs and outs[-1]["output_type"] == "stream" and outs[-1]["name"] == content["name"]:
                outs[-1]["text"] += content["text"]
            else:
                outs.append(
                    {"output_type": "stream", "name": content["name"], "text": content["text"]}
                )
        elif kind in ("display_data", "execute_result"):
            out = {
                "output_type": kind,
                "data": content.get("data", {}),
                "metadata": content.get("metadata", {}),
            }
            if kind == "execute_result":
                out["execution_count"] = content.get("execution_count")
            self._add(parent, out)
            display_id = content.get("transient", {}).get("display_id")
            if display_id:
                self.displays.setdefault(display_id, []).append(out)
                self.progress(content)
        elif kind == "update_display_data":
            # As a notebook front end does: every output showing this display
            # now shows the new data, wherever (in whichever cell) it is.
            display_id = content.get("transient", {}).get("display_id")
            self.progress(content)
            for out in self.displays.get(display_id, []):
                out["data"] = content.get("data", {})
                out["metadata"] = content.get("metadata", {})
        elif kind == "error":
            self._add(
                parent,
                {
                    "output_type": "error",
                    "ename": content.get("ename", ""),
                    "evalue": content.get("evalue", ""),
                    "traceback": content.get("traceback", []),
                },
            )
        elif kind == "clear_output":
            self.outputs[parent] = []

    def pump(self, timeout):
        """Reads iopub for up to `timeout` seconds; True if a message came."""
        try:
            msg = self.kc.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            return False
        self.handle(msg)
        return True

    def execute(self, source, timeout):
        """Runs one cell; returns (msg_id, reply content)."""
        msg_id = self.kc.execute(source, store_history=True, allow_stdin=False)
        start = time.monotonic()
        reply = None
        while True:
            if timeout and time.monotonic() - start > timeout:
                raise TimeoutError(f"cell did not finish within {timeout} s")
            if reply is None:
                try:
                    r = self.kc.get_shell_msg(timeout=0.05)
                    if r.get("parent_header", {}).get("msg_id") == msg_id:
                        reply = r["content"]
                        self.counts[msg_id] = reply.get("execution_count")
                except queue.Empty:
                    if not self.km.is_alive():
                        raise RuntimeError("the kernel died")
            self.pump(0.05)
            if (
                reply is not None
                and msg_id in self.idle
                and time.monotonic() - self.last_message > QUIET_S
            ):
                return msg_id, reply

    def drain(self, quiet):
        while True:
            if not self.pump(0.1) and time.monotonic() - self.last_message > quiet:
                return


def summarise(outputs):
    kinds = []
    for o in outputs:
        if o["output_type"] == "stream":
            kinds.append(o["name"])
        elif o["output_type"] == "error":
            kinds.append("error")
        else:
            kinds.extend(sorted(o["data"].keys()))
    return ", ".join(dict.fromkeys(kinds)) or "nothing"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("notebook")
    ap.add_argument("out")
    ap.add_argument("--timeout", type=float, default=0, help="seconds per cell (0: none)")
    ap.add_argument("--kernel", default="deno")
    ap.add_argument("--env", action="append", default=[], metavar="K=V")
    args = ap.parse_args()

    with open(args.notebook, encoding="utf-8") as f:
        nb = json.load(f)
    name = os.path.basename(args.notebook)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731

    env = dict(os.environ)
    for kv in args.env:
        k, _, v = kv.partition("=")
        env[k] = v
    km = KernelManager(kernel_name=args.kernel)
    km.start_kernel(cwd=os.path.dirname(os.path.abspath(args.notebook)), env=env)
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=120)
    runner = Runner(km, kc, log)

    problems = []
    started = time.monotonic()
    code_cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    ids = []
    try:
        for i, cell in enumerate(code_cells, 1):
            t0 = time.monotonic()
            msg_id, reply = runner.execute(cell_source(cell), args.timeout)
            ids.append(msg_id)
            n = len(runner.outputs.get(msg_id, []))
            log(f"{name} [{i}/{len(code_cells)}] {reply.get('status')} "
                f"{time.monotonic() - t0:.1f} s, {n} output(s)")
            if reply.get("status") != "ok":
                problems.append(
                    f"cell {i}: {reply.get('ename', 'error')}: {reply.get('evalue', '')}"
                )
                break
        runner.drain(FINAL_DRAIN_S)
    except (TimeoutError, RuntimeError) as e:
        problems.append(f"cell {len(ids) + 1}: {e}")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    seconds = time.monotonic() - started

    for i, cell in enumerate(code_cells, 1):
        if i > len(ids):
            cell["outputs"], cell["execution_count"] = [], None
            continue
        outs = runner.outputs.get(ids[i - 1], [])
        cell["outputs"] = outs
        cell["execution_count"] = runner.counts.get(ids[i - 1])
        first = cell_source(cell).strip().split("\n")[0][:60]
        for o in outs:
            if o["output_type"] == "error" and not any(p.startswith(f"cell {i}:") for p in problems):
                problems.append(f"cell {i} ({first}): {o['ename']}: {o['evalue']}")
        for o in outs:
            data = o.get("data", {})
            if "image/svg+xml" in data:
                problems.append(
                    f"cell {i} ({first}): an SVG picture, which nbconvert's HTML "
                    "and the viewers built on it show as an empty box; show it as "
                    "a PNG (lib/notebook/display.ts's svg() renders one)"
                )
        t = tags(cell)
        if "image" in t and not any(
            k in o.get("data", {}) for o in outs for k in IMAGE_TYPES
        ):
            problems.append(
                f"cell {i} ({first}): tagged image, but holds {summarise(outs)} "
                "(lost output?)"
            )
        elif not outs and "no-output" not in t:
            problems.append(f"cell {i} ({first}): no output (lost output?)")
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell.setdefault("metadata", {})

    # How the outputs were made: duration, date, CPUs, and the notebook
    # parameters that came from the environment.
    nb.setdefault("metadata", {})["gan_run"] = {
        "seconds": round(seconds, 1),
        "date": time.strftime("%Y-%m-%d"),
        "cpus": os.cpu_count(),
        "env": {
            k: v
            for k, v in sorted(env.items())
            if k.startswith("GAN_") and k not in NOT_PARAMETERS
        },
    }
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(nb, f, indent=1, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, args.out)

    if problems:
        for p in problems:
            log(f"{name}: FAILED {p}")
        log(f"{name}: {len(problems)} problem(s); outputs so far in {args.out}")
        return 1
    log(f"{name}: ok, {len(code_cells)} cells in {seconds:.0f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
