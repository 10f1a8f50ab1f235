using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;

namespace EdgeProxy.Transport;

/// <summary>
/// A reusable awaitable for an operation that is retried on each readiness edge until it completes
/// (a receive, a send, a flush). One per socket direction: unlike an async method, whose state
/// machine box is pooled only up to a few per core, this allocates nothing however many
/// connections wait at once. One run at a time; the continuation runs inline where the edge (or
/// the cancellation) completes it.
/// </summary>
internal abstract class ReadinessOperation<T> : IValueTaskSource<T>
{
    private readonly Action _onReady;
    private ManualResetValueTaskSourceCore<T> _core;
    private ValueTaskAwaiter _wait;
    private CancellationToken _token;

    protected ReadinessOperation() => _onReady = OnReady;

    /// <summary>One attempt: true with the result when done, false to wait for the next edge. May throw.</summary>
    protected abstract bool TryComplete(out T result);

    /// <summary>Waits for the edge the next attempt needs.</summary>
    protected abstract ValueTask WaitAsync(CancellationToken cancellationToken);

    /// <summary>Starts waiting (call after an attempt found nothing to do).</summary>
    public ValueTask<T> RunAsync(CancellationToken cancellationToken)
    {
        _core.Reset();
        _token = cancellationToken;
        Continue();
        return new ValueTask<T>(this, _core.Version);
    }

    private void Continue()
    {
        try
        {
            while (true)
            {
                var wait = WaitAsync(_token);
                if (!wait.IsCompleted)
                {
                    _wait = wait.GetAwaiter();
                    _wait.UnsafeOnCompleted(_onReady);
                    return;
                }
                wait.GetAwaiter().GetResult();
                if (TryComplete(out var result))
                {
                    _core.SetResult(result);
                    return;
                }
            }
        }
        catch (Exception ex)
        {
            _core.SetException(ex);
        }
    }

    private void OnReady()
    {
        try
        {
            var wait = _wait;
            _wait = default;
            wait.GetResult();
            if (TryComplete(out var result))
            {
                _core.SetResult(result);
                return;
            }
        }
        catch (Exception ex)
        {
            _core.SetException(ex);
            return;
        }
        Continue();
    }

    public T GetResult(short token) => _core.GetResult(token);

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
        => _core.OnCompleted(continuation, state, token, flags);
}
