using System.Collections.Concurrent;

namespace EdgeProxy.Forwarding;

/// <summary>
/// MAX_CONNECTIONS, once per backend (host and port) for the whole process: every exchange on
/// either request path holds one slot of its backend's budget from before it connects until its
/// response is over, so the fast path's pool and SocketsHttpHandler together never open more than
/// the configured number (each used to enforce its own cap: twice the limit in all).
/// </summary>
internal sealed class ConnectionBudgets(int maxConnections)
{
    private readonly ConcurrentDictionary<(string Host, int Port), SemaphoreSlim> _budgets = new();

    public SemaphoreSlim For(string host, int port)
        => _budgets.GetOrAdd((host, port), static (_, max) => new SemaphoreSlim(max, max), maxConnections);

    /// <summary>Takes a slot, waiting (under <paramref name="cancellationToken"/>) while all are in use.</summary>
    public static ValueTask TakeAsync(SemaphoreSlim budget, CancellationToken cancellationToken)
        => budget.Wait(0) ? ValueTask.CompletedTask : new ValueTask(budget.WaitAsync(cancellationToken));
}
