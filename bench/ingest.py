"""Ingestion throughput and its ceiling: end-to-end vs bare embedding of the same passages.

Usage: python -m bench ingest [--corpus squad|mixed|both|scanned] [--limit N] [--repeat N]
       [--scan-pages N] [--scan-from N]
       python -m bench ingest --queue [--corpus squad|mixed] [--limit N] [--embedding-url URL]
       (server mode through the queue: see bench/queue.py)

End-to-end and bare passes alternate ``--repeat`` times (default 3); the ceiling ratio is the
median pair's, with the spread of all pairs (one pair moves by +-10% on a shared machine).

``scanned``: the first ``--scan-pages`` pages of each R manual in mixed-docs rendered at 200
dpi into image-only PDFs (JPEG pages, as scanners write them), ingested with OCR: pages/s,
character error rate against the manuals' own text layer, the stage split with ``ocr``, and
the same pages with their text layer ingested in the same run (what OCR costs). Also
unstructured's ``ocr_only`` strategy on the same scans, for the choice of OCR path.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import MIXED, SQUAD, fresh_worker, table, write_result


def run_corpus(name: str, folder: Path, limit: int | None, repeat: int = 1) -> dict[str, Any]:
    """End-to-end ingest and the bare embedding of the same passages, alternated ``repeat``
    times (each end-to-end pass into a fresh store); the ratio is reported as the median of
    the pairs, with its spread, since one pair moves by +-10% on a shared machine."""
    import statistics

    from ingest.files.identity import content_hash
    from ingest.files.walk import iter_files
    from ingest.parsing.dispatch import parse_file
    from ingest.parsing.limits import ParseFailure, read_checked

    files = [f for f in iter_files(folder) if isinstance(f, Path)]
    if limit:
        files = files[:limit]
        work = Path(tempfile.mkdtemp()) / name
        work.mkdir(parents=True)
        for f in files:
            (work / f.name).write_bytes(f.read_bytes())
        folder = work
    texts: list[str] = []
    pairs: list[tuple[dict[str, Any], float]] = []
    for _attempt in range(max(1, repeat)):
        with tempfile.TemporaryDirectory() as tmp:
            settings, embedder, store, worker = fresh_worker(tmp)
            # warm the parser process (spawn + unstructured's imports) so that one-time
            # start-up is not counted as parsing
            for f in files[:1]:
                try:
                    data = read_checked(f, worker.limits)
                    worker.sandbox.parse(f, data, content_hash(data, "warm"), worker.limits)
                except ParseFailure:
                    pass
            summary = worker.run([folder]).as_dict()
            if not texts:  # the ceiling: the same passages through the same embedder
                for f in files:
                    try:
                        data = read_checked(f, worker.limits)
                        doc = parse_file(
                            f, data, content_hash(data, worker.signature), worker.limits
                        )
                    except ParseFailure:
                        continue
                    texts += [
                        p.text for parent in worker.chunker.parents(doc) for p in parent.passages
                    ]
            started = time.perf_counter()
            for i in range(0, len(texts), 256):
                embedder.embed_passages(texts[i : i + 256])
            pairs.append((summary, time.perf_counter() - started))
            store.close()
    ratios = [bare / s["seconds"] for s, bare in pairs]
    median = statistics.median(ratios)
    s, bare = min(pairs, key=lambda p: abs(p[1] / p[0]["seconds"] - median))  # the median pair
    return {
        "corpus": name,
        "files": s["files_seen"],
        "ingested": s["ingested"],
        "failed": len(s["failed"]),
        "parents": s["parents"],
        "passages": s["passages"],
        "tokens": s["tokens"],
        "seconds": s["seconds"],
        "stages": s["stages"],
        "files_per_s": s["files_seen"] / s["seconds"],
        "tokens_per_s": s["tokens"] / s["seconds"],
        "bare_embed_seconds": bare,
        "bare_tokens_per_s": s["tokens"] / bare,
        "ceiling_ratio": median,
        "ratios": ratios,
        "ratio_spread": (min(ratios), max(ratios)),
        "parse_chunk_over_embed": (s["stages"]["parse"] + s["stages"]["chunk"])
        / max(s["stages"]["embed"], 1e-9),
    }


def _cer(truth: str, seen: str) -> float:
    from rapidfuzz.distance import Levenshtein

    truth, seen = " ".join(truth.split()), " ".join(seen.split())
    return Levenshtein.distance(truth, seen) / max(1, len(truth))


def _page_cers(
    pages_truth: dict[int, str], pieces: list[tuple[int | None, str]]
) -> dict[int, float]:
    """Each page's CER: its true text against the (page, text) pieces read for it."""
    seen: dict[int | None, list[str]] = {}
    for page, text in pieces:
        seen.setdefault(page, []).append(text)
    return {n: _cer(text, "\n\n".join(seen.get(n, []))) for n, text in pages_truth.items()}


def run_scanned(pages: int, first: int = 1) -> dict[str, Any]:
    import io
    import statistics

    import pypdfium2 as pdfium

    from ingest.files.identity import content_hash
    from ingest.parsing.dispatch import parse_file
    from ingest.parsing.pdf_text import pdf_pages

    work = Path(tempfile.mkdtemp())
    (work / "scanned").mkdir()
    (work / "text").mkdir()
    truth: dict[str, dict[int, str]] = {}
    for manual in sorted((MIXED / "pdf").glob("R-*.pdf")):
        source = pdfium.PdfDocument(str(manual))
        chosen = list(range(first - 1, min(first - 1 + pages, len(source))))
        images = [source[i].render(scale=200 / 72, grayscale=True).to_pil() for i in chosen]
        out = io.BytesIO()
        images[0].convert("RGB").save(
            out,
            "PDF",
            resolution=200.0,
            save_all=True,
            append_images=[i.convert("RGB") for i in images[1:]],
        )
        (work / "scanned" / manual.name).write_bytes(out.getvalue())
        text = pdfium.PdfDocument.new()
        text.import_pages(source, chosen)
        text.save(str(work / "text" / manual.name))
        text.close()
        source.close()
        truth[manual.name] = dict(pdf_pages((work / "text" / manual.name).read_bytes()))
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        _, _, store, worker = fresh_worker(tmp)
        worker.sandbox.parse(work / "w.txt", b"warm up", "w", worker.limits)
        for kind in ("text", "scanned"):
            runs[kind] = worker.run([work / kind]).as_dict()
        confidences, per_page = [], []
        for name, pages_truth in truth.items():
            path = work / "scanned" / name
            data = path.read_bytes()
            doc = parse_file(path, data, content_hash(data, "b"), worker.limits)
            cers = _page_cers(pages_truth, [(e.page, e.text) for e in doc.elements])
            for number, text in pages_truth.items():
                per_page.append(
                    {
                        "file": name,
                        "page": number,
                        "cer": cers[number],
                        "confidence": doc.ocr_confidence.get(number),
                        "dot_leaders": text.count(". . .") + text.count("..."),
                    }
                )
            confidences += list(doc.ocr_confidence.values())
        store.close()
    rates = [p["cer"] for p in per_page]
    scanned_pages = sum(len(t) for t in truth.values())  # pages with a text layer to compare
    ocr_only = _unstructured_ocr_only(work / "scanned", truth)
    s, t = runs["scanned"], runs["text"]
    return {
        "pages": scanned_pages,
        "ocr_s": s["stages"]["ocr"],
        "seconds": s["seconds"],
        "pages_per_s_ocr": scanned_pages / max(s["stages"]["ocr"], 1e-9),
        "pages_per_s_end_to_end": scanned_pages / s["seconds"],
        "text_layer_seconds": t["seconds"],
        "stages": s["stages"],
        "text_stages": t["stages"],
        "warnings": s["warnings"],
        "failed": s["failed"],
        "cer_median": statistics.median(rates),
        "cer_mean": statistics.fmean(rates),
        "cer_pages_under_3pct": sum(r < 0.03 for r in rates) / len(rates),
        "confidence_median": statistics.median(confidences) if confidences else None,
        "per_page": per_page,
        "cer_median_without_leaders": statistics.median(
            [p["cer"] for p in per_page if not p["dot_leaders"]] or [float("nan")]
        ),
        "unstructured_ocr_only": ocr_only,
    }


def _unstructured_ocr_only(folder: Path, truth: dict[str, dict[int, str]]) -> dict[str, Any]:
    """unstructured's own OCR path (pdf2image + poppler + Tesseract) on the same scans."""
    import statistics

    try:
        from unstructured.partition.pdf import partition_pdf

        started = time.perf_counter()
        rates = []
        for name, pages_truth in truth.items():
            elements = partition_pdf(
                filename=str(folder / name), strategy="ocr_only", languages=["eng"]
            )
            rates += _page_cers(
                pages_truth, [(e.metadata.page_number, e.text) for e in elements]
            ).values()
        return {
            "seconds": time.perf_counter() - started,
            "cer_median": statistics.median(rates),
            "cer_mean": statistics.fmean(rates),
        }
    except Exception as exc:  # poppler-utils missing, say
        return {"error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = list(argv or [])
    if "--queue" in argv:  # server mode: the queue's workers against the embedding server
        from bench.queue import main as queue_main

        argv.remove("--queue")
        return queue_main(argv)
    parser = argparse.ArgumentParser(prog="python -m bench ingest")
    parser.add_argument("--corpus", choices=["squad", "mixed", "both", "scanned"], default="both")
    parser.add_argument("--limit", type=int, default=None, help="first N files only")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="alternating end-to-end and bare passes per corpus (default 3)",
    )
    parser.add_argument(
        "--scan-pages", type=int, default=10, help="scanned: N pages of each R manual (default 10)"
    )
    parser.add_argument(
        "--scan-from", type=int, default=1, help="scanned: the first of those pages (default 1)"
    )
    args = parser.parse_args(argv)
    if args.corpus == "scanned":
        r = run_scanned(args.scan_pages, args.scan_from)
        u = r["unstructured_ocr_only"]
        print(
            table(
                [
                    "path",
                    "pages",
                    "OCR s",
                    "pages/s (OCR)",
                    "end-to-end s",
                    "same pages, text layer s",
                    "CER median",
                    "CER mean",
                    "pages CER < 3%",
                ],
                [
                    [
                        "PDFium render + Tesseract (ours)",
                        r["pages"],
                        r["ocr_s"],
                        r["pages_per_s_ocr"],
                        r["seconds"],
                        r["text_layer_seconds"],
                        r["cer_median"],
                        r["cer_mean"],
                        r["cer_pages_under_3pct"],
                    ]
                ],
            )
        )
        if "error" in u:
            print(f"\nunstructured ocr_only: could not run ({u['error']})")
        else:
            print(
                f"\nunstructured ocr_only on the same scans: {u['seconds']:.1f} s, CER median "
                f"{u['cer_median']:.4f}, mean {u['cer_mean']:.4f}"
            )
        print("\nstages with OCR: " + ", ".join(f"{k} {v:.2f} s" for k, v in r["stages"].items()))
        print(
            "stages, text layer: "
            + ", ".join(f"{k} {v:.2f} s" for k, v in r["text_stages"].items())
        )
        worst = sorted(r["per_page"], key=lambda p: -p["cer"])[:8]
        print(
            "\nworst pages: "
            + "; ".join(
                f"{p['file']} p{p['page']} CER {p['cer']:.2f} (conf {p['confidence']}"
                f"{', table of contents' if p['dot_leaders'] > 3 else ''})"
                for p in worst
            )
        )
        print(f"CER median over pages without dot leaders: {r['cer_median_without_leaders']:.4f}")
        for w in r["warnings"]:
            print(f"  left out: {w['path'].rsplit('/', 1)[-1]}: {w['warning']}")
        write_result("ingest_scanned", r)
        return r
    corpora = {"squad": SQUAD / "articles", "mixed": MIXED}
    chosen = ["squad", "mixed"] if args.corpus == "both" else [args.corpus]
    results = [run_corpus(c, corpora[c], args.limit, args.repeat) for c in chosen]
    print(
        table(
            [
                "corpus",
                "files",
                "failed",
                "parents",
                "passages",
                "Llama tokens",
                "s",
                "files/s",
                "tokens/s",
                "bare embed tokens/s",
                "ceiling ratio (median)",
                "spread",
                "parse+chunk / embed",
                "parse s",
                "chunk s",
                "embed s",
                "store s",
            ],
            [
                [
                    r["corpus"],
                    r["files"],
                    r["failed"],
                    r["parents"],
                    r["passages"],
                    r["tokens"],
                    r["seconds"],
                    r["files_per_s"],
                    r["tokens_per_s"],
                    r["bare_tokens_per_s"],
                    r["ceiling_ratio"],
                    "{:.3f}-{:.3f} ({} pairs)".format(*r["ratio_spread"], len(r["ratios"])),
                    r["parse_chunk_over_embed"],
                    r["stages"]["parse"],
                    r["stages"]["chunk"],
                    r["stages"]["embed"],
                    r["stages"]["store"],
                ]
                for r in results
            ],
        )
    )
    write_result("ingest", {"results": results})
    return {"results": results}
