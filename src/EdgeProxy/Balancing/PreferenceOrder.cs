namespace EdgeProxy.Balancing;

/// <summary>
/// One affinity key's deterministic order of backends, walked lazily: first the key's Maglev slot
/// (its home), then two more Maglev lookups with derived hashes, then every remaining backend
/// ranked by weighted rendezvous hashing (highest random weight: score = -weight / ln(u), u from
/// the key and the backend id). Depends only on the key and the config, so every gateway replica
/// walks the same order with no shared state; a key whose home is out or over its load bound
/// always lands on the same next backend, and returns home when it may take the key again.
/// Allocation-free: the caller lends the scratch span (one double per backend).
/// </summary>
internal ref struct PreferenceOrder
{
    /// <summary>Maglev lookups before the rendezvous ranking: the home slot and two fall-back slots.</summary>
    public const int MaglevProbes = 3;

    private readonly BackendEntry[] _backends;
    private readonly AffinityTable _table;
    private readonly ulong _key;
    private readonly Span<double> _scores;
    private int _probe;
    private ulong _yielded;
    private bool _ranked;

    /// <param name="scratch">At least one element per backend; overwritten.</param>
    public PreferenceOrder(BackendEntry[] backends, AffinityTable table, ulong key, Span<double> scratch)
    {
        _backends = backends;
        _table = table;
        _key = key;
        _scores = scratch[..backends.Length];
    }

    /// <summary>The next backend in this key's order, each backend once; false after the last.</summary>
    public bool MoveNext(out int index)
    {
        while (_probe < MaglevProbes)
        {
            var hash = _probe == 0 ? _key : StableHash.Mix(_key + (ulong)_probe * 0x9E3779B97F4A7C15UL);
            _probe++;
            index = _table.Lookup(hash);
            if ((_yielded & (1UL << index)) == 0)
            {
                _yielded |= 1UL << index;
                return true;
            }
        }
        if (!_ranked)
        {
            // The ranking hashes every id, so it is computed only when a key gets this far.
            for (var i = 0; i < _backends.Length; i++)
            {
                var u = ((StableHash.Hash(_backends[i].Id, _key) >> 11) + 0.5) / (1UL << 53);
                _scores[i] = (_yielded & (1UL << i)) != 0 ? double.NegativeInfinity : -_backends[i].Weight / Math.Log(u);
            }
            _ranked = true;
        }
        var best = -1;
        for (var i = 0; i < _scores.Length; i++)
        {
            if (!double.IsNegativeInfinity(_scores[i]) && (best < 0 || _scores[i] > _scores[best]))
            {
                best = i;
            }
        }
        index = best;
        if (best < 0)
        {
            return false;
        }
        _scores[best] = double.NegativeInfinity;
        _yielded |= 1UL << best;
        return true;
    }
}
