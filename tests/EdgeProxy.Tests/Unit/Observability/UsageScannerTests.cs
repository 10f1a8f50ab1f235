using System.Text;
using EdgeProxy.Observability;

namespace EdgeProxy.Tests.Unit.Observability;

public sealed class UsageScannerTests
{
    private const string Sse =
        "data: {\"id\":\"c1\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n" +
        "data: {\"id\":\"c1\",\"choices\":[{\"delta\":{\"content\":\" there\"}}],\"usage\":null}\n\n" +
        "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":17,\"completion_tokens\":42,\"total_tokens\":59,\"prompt_tokens_details\":{\"cached_tokens\":3}}}\n\n" +
        "data: [DONE]\n\n";

    [Fact]
    public void Reads_usage_from_the_final_sse_chunk_and_ignores_null_usage()
    {
        var scanner = new UsageScanner();
        scanner.Observe(Encoding.UTF8.GetBytes(Sse));
        Assert.Equal(17, scanner.PromptTokens);
        Assert.Equal(42, scanner.CompletionTokens);
    }

    /// <summary>Every possible split point, including inside the key, the colon and the object.</summary>
    [Fact]
    public void Usage_split_across_two_reads_at_every_position_is_read()
    {
        var bytes = Encoding.UTF8.GetBytes(Sse);
        for (var split = 0; split <= bytes.Length; split++)
        {
            var scanner = new UsageScanner();
            scanner.Observe(bytes.AsSpan(0, split));
            scanner.Observe(bytes.AsSpan(split));
            Assert.True(scanner.PromptTokens == 17 && scanner.CompletionTokens == 42, $"split at {split}");
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(5)]
    [InlineData(7)]
    public void Usage_delivered_in_tiny_reads_is_read(int size)
    {
        var bytes = Encoding.UTF8.GetBytes(Sse);
        var scanner = new UsageScanner();
        for (var i = 0; i < bytes.Length; i += size)
        {
            scanner.Observe(bytes.AsSpan(i, Math.Min(size, bytes.Length - i)));
        }
        Assert.Equal(17, scanner.PromptTokens);
        Assert.Equal(42, scanner.CompletionTokens);
    }

    [Fact]
    public void Cumulative_usage_in_every_chunk_counts_the_last_one_only()
    {
        var scanner = new UsageScanner();
        scanner.Observe("{\"i\":0,\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}\n"u8);
        scanner.Observe("{\"i\":1,\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n"u8);
        scanner.Observe("{\"i\":2,\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3}}\n"u8);
        Assert.Equal(5, scanner.PromptTokens);
        Assert.Equal(3, scanner.CompletionTokens);
    }

    [Fact]
    public void Non_streaming_json_and_anthropic_style_names_are_read()
    {
        var scanner = new UsageScanner();
        scanner.Observe("{\"id\":\"x\",\"usage\" : { \"input_tokens\" : 11 , \"output_tokens\":22 }}"u8);
        Assert.Equal(11, scanner.PromptTokens);
        Assert.Equal(22, scanner.CompletionTokens);
    }

    [Theory]
    [InlineData("{\"text\":\"the \\\"usage\\\" word in content\"}")]
    [InlineData("{\"usage\":null}")]
    [InlineData("{\"usage\":\"n/a\"}")]
    [InlineData("{\"usage\":{\"prompt_tokens\":\"seven\"}}")]
    [InlineData("{\"choices\":[]}")]
    public void Bodies_without_a_usable_usage_object_report_nothing(string body)
    {
        var scanner = new UsageScanner();
        scanner.Observe(Encoding.UTF8.GetBytes(body));
        Assert.False(scanner.Found);
    }

    [Fact]
    public void Braces_inside_strings_in_the_usage_object_do_not_confuse_it()
    {
        var scanner = new UsageScanner();
        scanner.Observe("{\"usage\":{\"note\":\"}{\",\"prompt_tokens\":1,\"completion_tokens\":2}}"u8);
        Assert.Equal(1, scanner.PromptTokens);
        Assert.Equal(2, scanner.CompletionTokens);
    }

    [Fact]
    public void An_oversized_object_is_skipped_and_a_later_one_still_read()
    {
        var scanner = new UsageScanner();
        var huge = "{\"usage\":{\"pad\":\"" + new string('x', 5000) + "\"}}";
        scanner.Observe(Encoding.UTF8.GetBytes(huge));
        Assert.False(scanner.Found);
        scanner.Observe("{\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}"u8);
        Assert.Equal(3, scanner.PromptTokens);
    }

    [Fact]
    public void Release_returns_the_buffer_and_keeps_the_counts()
    {
        var scanner = new UsageScanner();
        scanner.Observe("{\"usage\":{\"prompt_tokens\":5,"u8);
        scanner.Release();   // mid-object: the partial capture is dropped with the buffer
        Assert.False(scanner.Found);
        scanner.Observe("{\"usage\":{\"prompt_tokens\":6,\"completion_tokens\":7}}"u8);
        scanner.Release();
        scanner.Release();   // idempotent
        Assert.Equal(6, scanner.PromptTokens);
        Assert.Equal(7, scanner.CompletionTokens);
    }

    /// <summary>Braces and quotes inside the usage object's strings (escaped or not) do not end it, at any split.</summary>
    [Fact]
    public void Braces_and_escaped_quotes_inside_strings_do_not_end_the_object()
    {
        var body = "{\"usage\":{\"note\":\"a } and \\\" and { and \\\\\",\"prompt_tokens\":7,\"nested\":{\"x\":\"}\"},\"completion_tokens\":9}}"u8.ToArray();
        for (var split = 0; split <= body.Length; split++)
        {
            var scanner = new UsageScanner();
            scanner.Observe(body.AsSpan(0, split));
            scanner.Observe(body.AsSpan(split));
            Assert.True(scanner.PromptTokens == 7 && scanner.CompletionTokens == 9, $"split at {split}: {scanner.PromptTokens}/{scanner.CompletionTokens}");
        }
        var bytewise = new UsageScanner();
        foreach (var b in body)
        {
            bytewise.Observe([b]);
        }
        Assert.Equal(7, bytewise.PromptTokens);
        Assert.Equal(9, bytewise.CompletionTokens);
    }

    /// <summary>An object over the 2 KiB cap is given up on; a later usage object in the same stream is still read.</summary>
    [Fact]
    public void An_oversized_usage_object_is_skipped_and_the_next_one_is_read()
    {
        var huge = "{\"usage\":{\"pad\":\"" + new string('x', 3000) + "\",\"prompt_tokens\":1,\"completion_tokens\":1}}\n";
        var next = "{\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":6}}\n";
        foreach (var size in new[] { 1, 100, 5000 })
        {
            var bytes = Encoding.UTF8.GetBytes(huge + next);
            var scanner = new UsageScanner();
            for (var i = 0; i < bytes.Length; i += size)
            {
                scanner.Observe(bytes.AsSpan(i, Math.Min(size, bytes.Length - i)));
            }
            Assert.Equal(4, scanner.PromptTokens);
            Assert.Equal(6, scanner.CompletionTokens);
        }
    }

    /// <summary>
    /// A usage object whole in one read is read in place; split into one-byte reads it goes through the
    /// capture and the JSON reader. Both must count the same, for the plain shape and for everything
    /// the in-place reader declines (escapes, arrays, fractions, signs, bad JSON, deep nesting).
    /// </summary>
    [Theory]
    [InlineData("{\"prompt_tokens\":12,\"completion_tokens\":1,\"total_tokens\":13}")]
    [InlineData("{ \"prompt_tokens\" : 0 ,\r\n\t\"completion_tokens\":999999999999999999 }")]
    [InlineData("{\"prompt_tokens\":1234567890123456789,\"completion_tokens\":2}")]
    [InlineData("{\"prompt_tokens\":17,\"prompt_tokens_details\":{\"cached_tokens\":3,\"audio\":{\"x\":1}},\"completion_tokens\":42}")]
    [InlineData("{\"input_tokens\":5,\"output_tokens\":6,\"service_tier\":\"standard\",\"cache\":null,\"ok\":true,\"no\":false}")]
    [InlineData("{\"prompt_tokens\":5,\"prompt_tokens\":7}")]
    [InlineData("{\"prompt_tokens\":5,\"completion_tokens\":{\"a\":1}}")]
    [InlineData("{\"details\":{\"prompt_tokens\":5},\"completion_tokens\":3}")]
    [InlineData("{}")]
    [InlineData("{\"prompt_tokens\":-1,\"completion_tokens\":2}")]
    [InlineData("{\"prompt_tokens\":1.5,\"completion_tokens\":2}")]
    [InlineData("{\"prompt_tokens\":1e3,\"completion_tokens\":2}")]
    [InlineData("{\"prompt_tokens\":012,\"completion_tokens\":2}")]
    [InlineData("{\"prompt_tokens\":12,\"completion_tokens\":2,}")]
    [InlineData("{\"prompt_tokens\":12 \"completion_tokens\":2}")]
    [InlineData("{\"prompt_tokens\":12,\"completion_tokens\":nul}")]
    [InlineData("{\"prompt_tokens\":12,\"completion_tokens\":2x}")]
    [InlineData("{\"prompt\\u005ftokens\":12,\"completion_tokens\":2}")]
    [InlineData("{\"note\":\"a \\\" b\",\"prompt_tokens\":12}")]
    [InlineData("{\"list\":[1,2],\"prompt_tokens\":12}")]
    [InlineData("{\"caf\u00e9\":1,\"prompt_tokens\":12}")]
    [InlineData("{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":{\"i\":1}}}}}}}},\"prompt_tokens\":4}")]
    [InlineData("{\"prompt_tokens\":12,\"completion_tokens\":99999999999999999999}")]
    public void The_in_place_reader_counts_what_the_json_reader_counts(string usage)
    {
        var body = Encoding.UTF8.GetBytes("{\"id\":\"x\",\"usage\":" + usage + "}");
        var whole = new UsageScanner();
        whole.Observe(body);
        var bytewise = new UsageScanner();
        foreach (var b in body)
        {
            bytewise.Observe([b]);
        }
        Assert.Equal((bytewise.PromptTokens, bytewise.CompletionTokens), (whole.PromptTokens, whole.CompletionTokens));
    }
}
