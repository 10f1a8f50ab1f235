using System.Buffers;
using System.Numerics;

namespace EdgeProxy.Forwarding;

/// <summary>
/// Buffers for HTTP heads on the fast path (the client's request head, the upstream request head,
/// the client's response head), each held only while one exchange needs it: three rents and returns
/// per proxied request.
/// <para>
/// Heads up to <see cref="CachedMaxLength"/> (almost all) come from a small free list per thread:
/// on the epoll transport an exchange runs on one loop thread from start to end, so a rent and its
/// return meet on the same list, with no lock and no atomic operation (the shared pool's bucket
/// locks showed in the fast path's profile). Each list keeps at most
/// <see cref="PerThreadPerSize"/> arrays of each size. When an exchange ends on another thread than
/// it began (a pooled upstream connection of another loop, TRANSPORT=sockets), the renting thread's
/// list runs dry and the returning thread's fills up: both then fall back to the shared pool below,
/// so nothing is allocated per request either way.
/// </para>
/// <para>
/// Larger heads, and the fallback, use their own <see cref="ArrayPool{T}"/>, not <see cref="ArrayPool{T}.Shared"/>:
/// the shared pool keeps a handful of arrays per size and core, and with 64 exchanges in flight most
/// returns were dropped and most rents allocated. That pool keeps up to <see cref="ArraysPerSize"/>
/// per size (64 KiB is the largest response head accepted).
/// </para>
/// </summary>
internal static class HeadBuffers
{
    public const int ArraysPerSize = 1024;

    /// <summary>Sizes 1, 2 and 4 KiB are cached per thread.</summary>
    public const int CachedMaxLength = 4096;

    private const int SmallestShift = 10;

    public const int PerThreadPerSize = 128;

    private static readonly ArrayPool<byte> Pool = ArrayPool<byte>.Create(maxArrayLength: 128 * 1024, maxArraysPerBucket: ArraysPerSize);

    [ThreadStatic]
    private static FreeList[]? t_lists;

    /// <summary>This thread's lists, one per cached size.</summary>
    private static FreeList[] Lists => t_lists ??= [new(), new(), new()];

    public static byte[] Rent(int minimumLength)
    {
        if (minimumLength > CachedMaxLength)
        {
            return Pool.Rent(minimumLength);
        }
        var size = SizeClass(minimumLength);
        return Lists[size].TryPop() ?? Pool.Rent(1 << (size + SmallestShift));
    }

    public static void Return(byte[] array)
    {
        var length = array.Length;
        if (length > CachedMaxLength || length < 1 << SmallestShift || !BitOperations.IsPow2(length))
        {
            Pool.Return(array);
            return;
        }
        if (!Lists[BitOperations.Log2((uint)length) - SmallestShift].TryPush(array))
        {
            Pool.Return(array);
        }
    }

    private static int SizeClass(int minimumLength)
        => minimumLength <= 1 << SmallestShift ? 0 : BitOperations.Log2((uint)minimumLength - 1) + 1 - SmallestShift;

    private sealed class FreeList
    {
        private readonly byte[]?[] _items = new byte[PerThreadPerSize][];
        private int _count;

        public byte[]? TryPop()
        {
            if (_count == 0)
            {
                return null;
            }
            var item = _items[--_count];
            _items[_count] = null;
            return item;
        }

        public bool TryPush(byte[] array)
        {
            if (_count == _items.Length)
            {
                return false;
            }
            _items[_count++] = array;
            return true;
        }
    }
}
