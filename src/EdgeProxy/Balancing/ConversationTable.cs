namespace EdgeProxy.Balancing;

/// <summary>
/// Where each recent conversation was last served (affinity "prefix"): a fixed-size, direct-mapped
/// table from a conversation key to the backend that holds its KV cache, so the next turn goes back
/// there. A new conversation has no cache anywhere, so it is placed by load (see
/// <see cref="BackendSelector"/>) and recorded; every later turn finds its backend here. Memory is
/// fixed (<see cref="Slots"/> × 8 bytes per model); a conversation whose slot another took is
/// placed as a new one (its cache may be lost, never its answer). Lock-free: one 64-bit word per
/// slot holds the key's upper 48 bits and the backend's 16-bit tag, written and read whole.
/// </summary>
internal sealed class ConversationTable
{
    /// <summary>Conversations remembered per model at most (256 KiB).</summary>
    public const int Slots = 1 << 15;

    private const ulong TagMask = 0xFFFF;

    private readonly ulong[] _slots = new ulong[Slots];

    /// <summary>The tag of the backend that last served <paramref name="key"/>, if the table still holds it.</summary>
    public bool TryGet(ulong key, out ushort tag)
    {
        var slot = Volatile.Read(ref _slots[IndexOf(key)]);
        tag = (ushort)(slot & TagMask);
        return slot != 0 && (slot & ~TagMask) == (key & ~TagMask);
    }

    /// <summary>Records that <paramref name="key"/>'s conversation is now served by the backend with <paramref name="tag"/>.</summary>
    public void Record(ulong key, ushort tag)
    {
        ref var slot = ref _slots[IndexOf(key)];
        var value = (key & ~TagMask) | tag;
        if (Volatile.Read(ref slot) != value)
        {
            Volatile.Write(ref slot, value);
        }
    }

    /// <summary>A backend's tag: 16 bits of its id's hash, never 0 (an empty slot).</summary>
    public static ushort TagOf(string backendId) => (ushort)Math.Max(1, StableHash.Hash(backendId) & TagMask);

    private static int IndexOf(ulong key) => (int)((key >> 16) & (Slots - 1));
}
