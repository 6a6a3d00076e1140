"""Benchmark the three faces of `features` against references measured in the same run.

1. batched: 64 x 0.5 s @ 16 kHz, the matching-env features (log-mel, MFCC, centroid, loudness) with
   `features.batch`; also the full descriptor set and `PerceptualLoss.compare` against a cached target.
   Reference: librosa computing mel/MFCC/centroid/RMS item by item.
2. streaming: the full descriptor set per 512-frame block at 48 kHz (`features.stream`: the block is
   resampled to the 16 kHz analysis rate, then analysed), p50/p99/max us of wall time, and of thread
   CPU time (the cost without preemption by other processes on a shared machine). Reference: a bare
   numpy block pipeline (rfft + 64-band mel + centroid + RMS) on the analysis window.
3. file analysis: `describe_file` on a WAV vs librosa loading it and computing the same descriptors
   (STFT, mel, MFCC, centroid, bandwidth, rolloff, flatness, chroma, RMS, YIN); wall and CPU time
   (CPU time sums all threads), the threads each side used, and ours on one thread for reference.

Output: one JSON object (`--json`) or a short report. Ratios > 1 mean we are faster than the reference.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from features import batch
from features.config import FeatureSettings
from features.dsp import plan_for
from features.loss import PerceptualLoss
from features.offline import available_cores, describe_file
from features.stream import StreamingDescriptors
from settings import SettingsError, load_settings


def _signal(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    """Notes of harmonic tones with envelopes plus light noise: a stand-in for a musical phrase."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    out = np.zeros(n)
    note = int(0.25 * sr)
    t = np.arange(note) / sr
    env = np.minimum(1.0, t / 0.01) * np.exp(-t / 0.2)
    for start in range(0, n - note, note):
        f0 = 110.0 * 2 ** (rng.integers(0, 24) / 12)
        tone = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 10) if k * f0 < sr / 2)
        out[start : start + note] += 0.3 * env * tone
    return out + 0.005 * rng.standard_normal(n)


def _best_ms(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of `repeats` runs (after one warm-up), in ms."""
    return _best_wall_and_cpu_ms(fn, repeats)[0]


def _best_wall_and_cpu_ms(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Best wall time and best process CPU time of `repeats` runs, in ms (CPU time is not inflated by other
    processes taking turns on a shared machine; both faces below run single-threaded)."""
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        cpu = time.process_time()
        start = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return 1000.0 * min(walls), 1000.0 * min(cpus)


def bench_batched(fs: FeatureSettings, repeats: int) -> dict[str, float]:
    sr, n = 16000, 8000
    audio_np = np.stack([_signal(0.5, sr, seed) for seed in range(64)]).astype(np.float32)
    audio = torch.tensor(audio_np)

    def env_features() -> None:
        fr = batch.analyze_frames(audio, sr, fs)
        logmel = batch.log_mel_frames(fr)
        batch.mfcc_from_log_mel(logmel, fr.const)
        batch.spectral_shape(fr)
        batch.loudness_group(fr)

    loss = PerceptualLoss(feature_settings=fs, sample_rate_hz=sr)
    target = loss.prepare_target(audio[0])
    plan = plan_for(sr, fs)

    def librosa_reference() -> None:
        import librosa

        for x in audio_np:
            spec = np.abs(librosa.stft(x, n_fft=plan.window, hop_length=plan.hop)) ** 2
            mel = librosa.feature.melspectrogram(S=spec, sr=sr, n_mels=fs.n_mels, fmax=fs.max_freq_hz)
            librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=13)
            librosa.feature.spectral_centroid(S=np.sqrt(spec), sr=sr)
            librosa.feature.rms(y=x, frame_length=plan.window, hop_length=plan.hop)

    with torch.no_grad():
        ours = _best_ms(env_features, repeats)
        full = _best_ms(lambda: batch.describe_batch(audio, sr, fs), repeats)
        compare = _best_ms(lambda: loss.compare(audio, target), repeats)
    ref = _best_ms(librosa_reference, max(1, repeats // 2))
    return {
        "batch": 64,
        "seconds_each": n / sr,
        "env_features_ms": round(ours, 2),
        "all_descriptors_ms": round(full, 2),
        "loss_compare_ms": round(compare, 2),
        "librosa_ms": round(ref, 2),
        "ratio_vs_librosa": round(ref / ours, 1),
    }


def bench_streaming(fs: FeatureSettings, blocks: int) -> dict[str, float]:
    sr, block = 48000, 512
    x = _signal(blocks * block / sr + 0.1, sr).astype(np.float32)
    st = StreamingDescriptors(fs, sr, block)
    plan = st.plan
    for i in range(50):
        st.process(x[i * block : (i + 1) * block])
    ours = np.empty(blocks)
    ours_cpu = np.empty(blocks)  # thread CPU time: what the block costs without preemption by other processes
    for i in range(blocks):
        b = x[i * block : (i + 1) * block]
        start_cpu = time.thread_time_ns()
        start = time.perf_counter_ns()
        st.process(b)
        ours[i] = time.perf_counter_ns() - start
        ours_cpu[i] = time.thread_time_ns() - start_cpu

    # reference: the bare pipeline of the notes (rfft + mel + centroid + RMS), buffers preallocated
    frame = np.zeros(plan.window)
    windowed = np.zeros(plan.window)
    spec = np.zeros(plan.n_bins, dtype=np.complex128)
    mag = np.zeros(plan.n_bins)
    mel = np.zeros(plan.mel.shape[0])
    freqs = np.arange(plan.n_bins) * sr / plan.window
    mel_full = np.zeros((plan.mel.shape[0], plan.n_bins))
    mel_full[:, : plan.n_band] = plan.mel
    ref = np.empty(blocks)
    ref_cpu = np.empty(blocks)
    for i in range(blocks):
        b = x[i * block : (i + 1) * block]
        start_cpu = time.thread_time_ns()
        start = time.perf_counter_ns()
        frame[:-block] = frame[block:]
        frame[-block:] = b
        np.multiply(frame, plan.hann, out=windowed)
        np.fft.rfft(windowed, out=spec)
        np.abs(spec, out=mag)
        np.matmul(mel_full, mag, out=mel)
        float(np.dot(freqs, mag)) / (float(mag.sum()) + 1e-12)
        float(np.dot(frame, frame))
        ref[i] = time.perf_counter_ns() - start
        ref_cpu[i] = time.thread_time_ns() - start_cpu
    p50, p99 = np.percentile(ours, [50, 99]) / 1000.0
    r50, r99 = np.percentile(ref, [50, 99]) / 1000.0
    c50, c99 = np.percentile(ours_cpu, [50, 99]) / 1000.0
    rc50, rc99 = np.percentile(ref_cpu, [50, 99]) / 1000.0
    return {
        "sample_rate": sr,
        "block_size": block,
        "window": plan.window,
        "descriptors": len(st.names),
        "blocks": blocks,
        "block_us": {"p50": round(p50, 1), "p99": round(p99, 1), "max": round(float(ours.max()) / 1000.0, 1)},
        "block_cpu_us": {"p50": round(c50, 1), "p99": round(c99, 1)},
        "reference_bare_fft_pipeline_us": {"p50": round(r50, 1), "p99": round(r99, 1)},
        "reference_bare_fft_pipeline_cpu_us": {"p50": round(rc50, 1), "p99": round(rc99, 1)},
        "cost_vs_bare_pipeline_p50": round(p50 / r50, 2),
        "target_p99_us": 200.0,
        "meets_target_wall": bool(p99 <= 200.0),
        "meets_target_cpu": bool(c99 <= 200.0),
    }


def _librosa_threads() -> dict[str, int]:
    """The native thread pools librosa's numpy / scipy calls may use (BLAS, OpenMP), by library."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {}
    return {f"{p['internal_api']}:{Path(p['filepath']).name}": int(p["num_threads"]) for p in threadpool_info()}


def bench_file(
    fs: FeatureSettings, seconds: float, file_rate: int, repeats: int, threads: int | None = None
) -> dict[str, object]:
    import librosa

    threads = available_cores() if threads is None else threads
    plan = plan_for(fs.sample_rate_hz, fs)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.wav"
        sf.write(path, _signal(seconds, file_rate), file_rate, subtype="PCM_16")

        def ours() -> None:
            describe_file(path, fs, threads=threads)

        def ours_serial() -> None:
            describe_file(path, fs, threads=1)

        def reference() -> None:
            y, sr = librosa.load(path, sr=fs.sample_rate_hz, mono=True)
            spec = np.abs(librosa.stft(y, n_fft=plan.window, hop_length=plan.hop))
            power = spec**2
            mel = librosa.feature.melspectrogram(S=power, sr=sr, n_mels=fs.n_mels, fmax=fs.max_freq_hz)
            librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=13)
            librosa.feature.spectral_centroid(S=spec, sr=sr)
            librosa.feature.spectral_bandwidth(S=spec, sr=sr)
            librosa.feature.spectral_rolloff(S=spec, sr=sr, roll_percent=fs.rolloff_percent / 100)
            librosa.feature.spectral_flatness(S=spec)
            librosa.feature.chroma_stft(S=power, sr=sr, tuning=0.0)
            librosa.feature.rms(y=y, frame_length=plan.window, hop_length=plan.hop)
            librosa.yin(
                y, fmin=fs.pitch_fmin_hz, fmax=fs.pitch_fmax_hz, sr=sr, frame_length=plan.window, hop_length=plan.hop
            )

        ours_s, ours_cpu_s = (t / 1000.0 for t in _best_wall_and_cpu_ms(ours, repeats))
        ref_s, ref_cpu_s = (t / 1000.0 for t in _best_wall_and_cpu_ms(reference, max(1, repeats // 2)))
        serial_s, serial_cpu_s = (t / 1000.0 for t in _best_wall_and_cpu_ms(ours_serial, max(1, repeats // 2)))
    return {
        "audio_s": seconds,
        "file_sample_rate": file_rate,
        "ours_threads": threads,
        "ours_torch_threads_per_worker": 1 if threads > 1 else torch.get_num_threads(),
        "librosa_threads": _librosa_threads(),
        "ours_s": round(ours_s, 4),
        "librosa_s": round(ref_s, 4),
        "ratio_vs_librosa": round(ref_s / ours_s, 1),
        "realtime_factor": round(seconds / ours_s, 0),
        "ours_cpu_s": round(ours_cpu_s, 4),
        "librosa_cpu_s": round(ref_cpu_s, 4),
        "ratio_vs_librosa_cpu": round(ref_cpu_s / ours_cpu_s, 1),
        "realtime_factor_cpu": round(seconds / ours_cpu_s, 0),
        "ours_one_thread_s": round(serial_s, 4),
        "ours_one_thread_cpu_s": round(serial_cpu_s, 4),
        "ratio_one_thread_vs_librosa": round(ref_s / serial_s, 1),
        "targets": {"ratio_vs_librosa": 5.0, "realtime_factor": 1000.0},
    }


STAGES = ("batched", "streaming", "file_16k", "file_44k")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--settings", default=None, help="settings YAML (default: environment_settings.yaml)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions (best is kept)")
    parser.add_argument("--blocks", type=int, default=3000, help="streaming blocks to time")
    parser.add_argument("--file-seconds", type=float, default=60.0, help="length of the analysed file")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: comparable with librosa)")
    parser.add_argument(
        "--file-threads", type=int, default=None, help="describe_file threads (default: the cores available)"
    )
    parser.add_argument(
        "--only", nargs="+", choices=STAGES, default=None, help="run only these stages (default: all of them)"
    )
    args = parser.parse_args(argv)
    file_threads_ok = args.file_threads is None or args.file_threads >= 1
    if args.repeats < 1 or args.blocks < 100 or args.file_seconds <= 1 or args.threads < 1 or not file_threads_ok:
        print(
            "error: need --repeats >= 1, --blocks >= 100, --file-seconds > 1, --threads >= 1, --file-threads >= 1",
            file=sys.stderr,
        )
        return 2
    try:
        fs = load_settings(args.settings).features
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    result: dict[str, object] = {"torch_threads": args.threads}
    stages = [
        ("batched", lambda: bench_batched(fs, args.repeats)),
        ("streaming", lambda: bench_streaming(fs, args.blocks)),
        ("file_16k", lambda: bench_file(fs, args.file_seconds, 16000, args.repeats, args.file_threads)),
        ("file_44k", lambda: bench_file(fs, args.file_seconds, 44100, args.repeats, args.file_threads)),
    ]
    stages = [(name, run) for name, run in stages if args.only is None or name in args.only]
    for name, run in tqdm(stages, desc="features benchmark", file=sys.stderr, disable=None):
        result[name] = run()
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
