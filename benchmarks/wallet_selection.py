"""Choosing what to present from a wallet holding thousands of credentials: figure, target, PASS/FAIL.

A pipeline asks its node's wallet for a presentation for every transfer; before signing, the wallet chooses the
approval for the request and what it rests on (wallet.present). This fills a real SQLite wallet (in a temporary
directory) with --n credentials (default 5,000), signed and imported through the wallet's own verifying import:

- approvals naming this organisation as a recipient, from 20 bodies, for 400 datasets; some for other recipients;
- delegations, certifications of this organisation (and of others), and other credentials;
- about half no longer in force: validity ended (imported, while valid, by a wallet verifying as of 100 days ago,
  since a wallet refuses an expired credential), or ended by the ``notAfter`` an approval or a delegation states;
- the one approval the transfer needs is the oldest held (so every newer one is read past), rests on a delegation
  and requires a CyberEssentials certification; newer approvals for the same dataset have ended.

It then times, over repeated calls (median and p95 of the choosing thread's CPU time, SQLite running in it; wall
time shown beside, since this machine is shared and wall time mostly measures the other work on it):
  select_for_transfer  the dataset/purpose path present_for_request takes               target CPU p95 < 50 ms
  pex + complete       a Presentation Exchange definition with a dataset, completed      target CPU p95 < 50 ms
  search(usable=True)  every credential in force now, alone (2,450 whole rows), against SQLite's bare fetch of the
                       same rows in the same run (its floor, which the load moves)       target <= 4x
                       (with under 1,000 rows, where a query's fixed cost dominates: CPU median < 50 ms)
and the Python memory allocated at peak by one selection (tracemalloc; no target).

Why 50 ms: a transfer's whole decision at the gateway is about 1 ms (docs/performance.md), and a presentation is
made for every transfer; choosing at the client should not be what a pull waits for. Why 4x for search: loading
each row as a record costs about 2.5x the bare fetch; reading each row's JSON as well (as before) cost 6x.

Figures (docs/performance.md, "Choosing what to present"), 5,000 credentials held, on this 2-core machine shared
with other helpers (load average 6 to 7), CPU median / p95 (wall median):
  before (main at 7d970f5; every usable row's JSON read for its end, the whole wallet read for each credential
  pinned by digest, every usable approval parsed): select_for_transfer 610 / 645 ms (1,331 ms); pex + complete
  1,078 / 1,172 ms (2,141 ms); search(usable=True) 140 ms, 6.0x the bare fetch; peak allocation 14.0 MiB. FAIL.
  after (the end stored on receipt, migration wallet_0006; narrowed in SQL): select_for_transfer 16.0 / 22.7 ms
  (33 ms); pex + complete 38.5 / 46.3 ms (78 ms); search(usable=True) 77 ms, 2.8x; peak allocation 0.5 MiB. PASS.

    .venv/bin/python benchmarks/wallet_selection.py [--n 5000] [--repeat 30]
"""
from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from issuer.db import make_engine  # noqa: E402
from test_wallet_support import (CYBER_ESSENTIALS, DS_MEALS, ISO27001, P_MEALS, StaticFetcher,  # noqa: E402
                                 approval_subject, certification_subject, delegation_subject, identity, vc)
from wallet.present import complete_selection, select_credentials, select_for_transfer  # noqa: E402
from wallet.store import Wallet, make_verifier, upgrade  # noqa: E402

TARGET_MS = 50.0
SEARCH_RATIO = 4.0    # loading each row as a record, no more: no row's JSON read
BATCH = 250


class AsOf:
    """The wallet's verifier, verifying as of a past moment: how a credential received months ago, while it was
    valid, comes to be held now that it has ended."""

    def __init__(self, inner, moment: datetime):
        self.inner, self.moment = inner, moment

    def verify_credential(self, credential, now=None):
        return self.inner.verify_credential(credential, now=self.moment)


def _ts(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def fill(wallet: Wallet, past_wallet: Wallet, n: int) -> dict:
    """Sign and import ``n`` credentials; returns counts by kind and the wanted approval's credential."""
    holder = wallet.holder
    now = datetime.now(timezone.utc)
    bodies = [identity() for _ in range(20)]
    others = [identity().did for _ in range(30)]
    controller = identity()
    datasets = [f"https://data.example.gov.scot/dataset/d{i}" for i in range(400)]
    old_start, old_for = now - timedelta(days=400), timedelta(days=365)     # validity ended 35 days ago
    ended = _ts(now - timedelta(days=30))                                   # a notAfter already past

    # the approval the transfer needs, oldest held: delegation -> approval, requiring CyberEssentials
    iao = bodies[0]
    delegation = vc(controller, "DelegatedAuthorityCredential", delegation_subject(iao.did, controller.did),
                    valid_for=timedelta(days=3650))
    wanted = vc(iao, "DataSharingApprovalCredential",
                approval_subject(iao.did, holder, requirements=(CYBER_ESSENTIALS,), chain=(delegation,)),
                valid_for=timedelta(days=3650))
    cert = vc(bodies[1], "OrganisationCertificationCredential", certification_subject(holder, CYBER_ESSENTIALS),
              valid_for=timedelta(days=3650))
    _import(wallet, [delegation, wanted, cert])

    counts = {"approval": 1, "delegation": 1, "certification": 1, "other": 0}
    current, old = [], []
    for i in range(n - 3):
        body = bodies[i % len(bodies)]
        kind, block = i % 20, i // 20
        dataset = DS_MEALS if i % 50 == 0 else datasets[i % len(datasets)]
        gone = block % 2 == 0 or dataset == DS_MEALS   # about half no longer in force (every newer one for DS_MEALS)
        by_notafter = gone and block % 4 == 0          # of those, some ended by a notAfter they state
        if kind < 11:                                  # 55 % approvals
            recipient = holder if kind < 10 else others[i % len(others)]
            subject = approval_subject(body.did, recipient, datasets=(dataset,))
            if by_notafter:
                subject["notAfter"] = ended
            credential_type, counts["approval"] = "DataSharingApprovalCredential", counts["approval"] + 1
        elif kind < 15:                                # 20 % delegations
            subject = delegation_subject(identity().did if i % 3 else body.did, body.did)
            if by_notafter:
                subject["scope"]["notAfter"] = ended
            credential_type, counts["delegation"] = "DelegatedAuthorityCredential", counts["delegation"] + 1
        elif kind < 18:                                # 15 % certifications, one in five this organisation's
            about = holder if block % 5 == 0 else others[i % len(others)]
            subject = certification_subject(about, ISO27001 if i % 2 else CYBER_ESSENTIALS)
            by_notafter = False
            credential_type, counts["certification"] = "OrganisationCertificationCredential", \
                counts["certification"] + 1
        else:                                          # 10 % other credentials
            subject = {"id": holder, "name": f"record {i}"}
            by_notafter = False
            credential_type, counts["other"] = "MembershipCredential", counts["other"] + 1
        if gone and not by_notafter:
            old.append(vc(body, credential_type, subject, valid_from=old_start, valid_for=old_for))
        else:
            current.append(vc(body, credential_type, subject, valid_for=timedelta(days=3650)))
    _import(past_wallet, old)
    _import(wallet, current)
    counts["validity ended"] = len(old)
    return counts


def _import(wallet: Wallet, credentials: list) -> None:
    for start in range(0, len(credentials), BATCH):
        results = wallet.import_credentials(credentials[start:start + BATCH], source="benchmark")
        refused = [p.code for r in results for p in r.problems]
        if refused:
            raise SystemExit(f"the wallet refused a benchmark credential: {refused[:3]}")


def timed(fn, repeat: int) -> tuple[float, float, float, float]:
    """Median and p95 of wall time, then of this thread's CPU time (SQLite runs in it), in ms."""
    fn()                                                                     # warm: imports, caches
    wall, cpu = [], []
    for _ in range(repeat):
        start, used = time.perf_counter(), time.thread_time()
        fn()
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.thread_time() - used) * 1000)
    p95 = min(repeat - 1, round(0.95 * (repeat - 1)))
    wall.sort()
    cpu.sort()
    return statistics.median(wall), wall[p95], statistics.median(cpu), cpu[p95]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="credentials held (default 5000)")
    parser.add_argument("--repeat", type=int, default=30, help="timed calls of each (default 30)")
    args = parser.parse_args()
    definition = {"id": "meals-transfer", "input_descriptors": [
        {"id": "approval", "constraints": {"fields": [
            {"path": ["$.type"], "filter": {"type": "array", "contains": {"const": "DataSharingApprovalCredential"}}},
            {"path": ["$.credentialSubject.datasets[*]"], "filter": {"type": "string", "const": DS_MEALS}}]}}]}
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        holder, fetcher = identity(), StaticFetcher()
        engine = make_engine(f"sqlite:///{Path(tmp) / 'node.db'}")
        upgrade(engine)
        wallet = Wallet(engine, holder.did, key=holder.key, kid=holder.kid, verifier=make_verifier(fetcher))
        past = Wallet(engine, holder.did, verifier=AsOf(make_verifier(fetcher),
                                                          datetime.now(timezone.utc) - timedelta(days=100)))
        started = time.perf_counter()
        counts = fill(wallet, past, args.n)
        usable = len(wallet.search(usable=True))
        print(f"held {args.n} credentials ({counts['approval']} approvals, {counts['delegation']} delegations, "
              f"{counts['certification']} certifications, {counts['other']} other; {args.n - usable} not in force: "
              f"{counts['validity ended']} by validity, the rest by a notAfter) in "
              f"{time.perf_counter() - started:.0f} s", flush=True)

        chosen = select_for_transfer(wallet, DS_MEALS, P_MEALS)
        assert [r.type_list[-1] for r in chosen] == ["DataSharingApprovalCredential", "DelegatedAuthorityCredential",
                                                     "OrganisationCertificationCredential"], chosen

        def pex_path():
            picked = select_credentials(wallet, dataset=DS_MEALS, purpose=P_MEALS, definition=definition)
            return complete_selection(wallet, picked, dataset=DS_MEALS, purpose=P_MEALS)

        assert pex_path()[0] == [r.credential for r in chosen]
        print(f"target p95 < {TARGET_MS:.0f} ms of CPU each: a transfer's whole decision at the gateway is about 1 ms, "
              "so choosing at the client should not be what a pull waits for. CPU time is judged, wall time shown: "
              "this machine is shared with other work (load average "
              f"{open('/proc/loadavg').read().split()[0]} now), which wall time includes")
        for name, fn in (("select_for_transfer", lambda: select_for_transfer(wallet, DS_MEALS, P_MEALS)),
                         ("pex + complete", pex_path)):
            median, p95, cpu_median, cpu_p95 = timed(fn, args.repeat)
            passed = cpu_p95 < TARGET_MS
            ok &= passed
            print(f"{name:21} CPU median {cpu_median:6.1f} ms, p95 {cpu_p95:6.1f} ms   (wall median {median:6.1f} ms, "
                  f"p95 {p95:6.1f} ms)   target CPU p95 < {TARGET_MS:.0f} ms   {'PASS' if passed else 'FAIL'}",
                  flush=True)
        # search(usable=True) alone returns every credential in force, each a whole row: at the least SQLite's own
        # fetch of those rows, which this machine's load moves a good deal, so it is judged against that fetch
        ids = [r.id for r in wallet.search(usable=True)]
        with sqlite3.connect(Path(tmp) / "node.db") as bare:
            sql = f"SELECT * FROM wallet_credential WHERE id IN ({','.join('?' * len(ids))}) ORDER BY received_at DESC"
            fetch = lambda: bare.execute(sql, ids).fetchall()  # noqa: E731
            rounds = [(timed(fetch, 3)[2], timed(lambda: wallet.search(usable=True), 3)[2])
                      for _ in range(max(1, args.repeat // 3))]
        ratio = statistics.median(s / f for f, s in rounds)
        took = statistics.median(s for _, s in rounds)
        if len(ids) >= 1000:           # the rows dominate
            passed, target = ratio <= SEARCH_RATIO, f"<= {SEARCH_RATIO:.0f} x"
        else:                          # a query's fixed cost dominates a small fetch: the choosing target instead
            passed, target = took < TARGET_MS, f"< {TARGET_MS:.0f} ms (under 1,000 rows)"
        ok &= passed
        print(f"search(usable=True)   {len(ids)} rows: CPU median {took:6.1f} ms, {ratio:.1f} x SQLite's bare fetch "
              f"of the same rows ({statistics.median(f for f, _ in rounds):.1f} ms)   target {target}   "
              f"{'PASS' if passed else 'FAIL'}", flush=True)
        tracemalloc.start()
        select_for_transfer(wallet, DS_MEALS, P_MEALS)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"memory: one select_for_transfer allocates at most {peak / 2**20:.1f} MiB at once (no target)")
        engine.dispose()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
