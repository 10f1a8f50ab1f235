using EdgeProxy.Health;

namespace EdgeProxy.Tests.Unit.Health;

/// <summary>The engine's batch from its Prometheus text: running and waiting, summed over label sets, for each engine family.</summary>
public sealed class EngineMetricsTests
{
    [Fact]
    public void Vllm_gauges_are_summed_over_label_sets()
    {
        const string text = """
            # HELP vllm:num_requests_running Number of requests in model execution batches.
            # TYPE vllm:num_requests_running gauge
            vllm:num_requests_running{engine="0",model_name="m"} 5.0
            vllm:num_requests_running{engine="1",model_name="m, with spaces {x}"} 3.0
            # TYPE vllm:num_requests_waiting gauge
            vllm:num_requests_waiting{engine="0",model_name="m"} 2.0 1733580000000
            vllm:num_requests_waiting{engine="1",model_name="m"} 0.0
            vllm:num_requests_running_total 99
            vllm:gpu_cache_usage_perc{model_name="m"} 0.93
            """;
        Assert.Equal((8, 2), EngineMetrics.Read(text));
    }

    [Theory]
    [InlineData("sglang:num_running_reqs{tp_rank=\"0\"} 16\nsglang:num_queue_reqs{tp_rank=\"0\"} 4\n", 16, 4)]
    [InlineData("llamacpp:requests_processing 4\r\nllamacpp:requests_deferred 1\r\n", 4, 1)]
    [InlineData("tgi_batch_current_size 12\ntgi_queue_size 0\n", 12, 0)]
    [InlineData("vllm:num_requests_waiting 1e1\nvllm:num_requests_running 2.5e1\n", 25, 10)]
    public void Other_engines_are_read_too(string text, int running, int waiting)
        => Assert.Equal((running, waiting), EngineMetrics.Read(text));

    [Theory]
    [InlineData("")]
    [InlineData("<html>404 page not found</html>")]
    [InlineData("vllm:num_requests_running 4\n")]   // one of the two gauges only
    [InlineData("vllm:num_requests_running NaN\nvllm:num_requests_waiting 1\n")]
    [InlineData("vllm:num_requests_running -3\nvllm:num_requests_waiting 1\n")]
    [InlineData("process_cpu_seconds_total 12.5\n")]
    public void Nothing_to_read_is_null(string text) => Assert.Null(EngineMetrics.Read(text));
}
