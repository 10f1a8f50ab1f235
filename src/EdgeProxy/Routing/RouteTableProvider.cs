namespace EdgeProxy.Routing;

/// <summary>
/// Holds the current <see cref="RouteTable"/>. Readers take the reference once per request (a
/// volatile read, no lock); a reload publishes a complete new table with one write, so a request
/// sees either the old or the new config, never a mix, and in-flight requests keep theirs.
/// </summary>
internal sealed class RouteTableProvider(RouteTable initial)
{
    private RouteTable _current = initial;

    public RouteTable Current => Volatile.Read(ref _current);

    /// <summary>Raised after a new table is published (health checks reconcile their loops).</summary>
    public event Action<RouteTable, RouteTable>? Changed;

    public void Publish(RouteTable next)
    {
        var previous = Interlocked.Exchange(ref _current, next);
        Changed?.Invoke(previous, next);
    }
}
