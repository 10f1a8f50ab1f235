using System.Buffers;

namespace EdgeProxy.Forwarding;

/// <summary>
/// Buffers for HTTP heads on the fast path (the client's request head, the upstream request head,
/// the client's response head), each held only while one exchange needs it. Their own pool, not
/// <see cref="ArrayPool{T}.Shared"/>: the shared pool keeps a handful of arrays per size and core,
/// and with 64 exchanges in flight most returns were dropped and most rents allocated (1 KiB arrays
/// were three quarters of the bytes a request allocated). This one keeps up to
/// <see cref="ArraysPerSize"/> per size; the most it retains after a burst is that many of each
/// size used (heads are 1–4 KiB; 64 KiB is the largest response head accepted).
/// </summary>
internal static class HeadBuffers
{
    public const int ArraysPerSize = 1024;

    public static ArrayPool<byte> Pool { get; } = ArrayPool<byte>.Create(maxArrayLength: 128 * 1024, maxArraysPerBucket: ArraysPerSize);
}
