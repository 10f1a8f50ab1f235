using System.Text;
using System.Text.Json;
using EdgeProxy.Balancing;

namespace EdgeProxy.Tests.Unit.Balancing;

public sealed class ConversationKeyTests
{
    private static readonly string LongSystem = "You are a careful assistant. " + string.Concat(Enumerable.Repeat("Answer briefly and cite sources. ", 40));

    /// <summary>An OpenAI chat body: the system prompt, then alternating user/assistant turns, then <paramref name="extra"/> fields.</summary>
    private static byte[] Chat(string system, IEnumerable<string> turns, string extra = "")
    {
        var messages = new List<object> { new Dictionary<string, string> { ["role"] = "system", ["content"] = system } };
        var i = 0;
        foreach (var turn in turns)
        {
            messages.Add(new Dictionary<string, string> { ["role"] = i++ % 2 == 0 ? "user" : "assistant", ["content"] = turn });
        }
        var json = "{\"model\":\"m\"," + extra + "\"messages\":" + JsonSerializer.Serialize(messages, JsonOptions.Default) + ",\"stream\":true}";
        return Encoding.UTF8.GetBytes(json);
    }

    private static ulong KeyOf(byte[] body)
    {
        var peek = body.Length > ConversationKey.PeekBytes ? body[..ConversationKey.PeekBytes] : body;
        Assert.True(ConversationKey.TryCompute(peek, peek.Length == body.Length, out var key), Encoding.UTF8.GetString(peek[..Math.Min(200, peek.Length)]));
        return key;
    }

    [Fact]
    public void Conversations_sharing_a_system_prompt_share_an_opening_key_and_no_more()
    {
        static (ulong Key, ulong Opening) Of(byte[] body)
        {
            Assert.True(ConversationKey.TryCompute(body, true, out var key, out var opening));
            return (key, opening);
        }
        var a = Of(Chat(LongSystem, ["First question?"]));
        var aLater = Of(Chat(LongSystem, ["First question?", "An answer.", "A follow-up?"]));
        var b = Of(Chat(LongSystem, ["Another question?"]));
        var other = Of(Chat("You are terse.", ["First question?"]));

        Assert.Equal(a, aLater);
        Assert.NotEqual(a.Key, b.Key);
        Assert.Equal(a.Opening, b.Opening);
        Assert.NotEqual(a.Opening, other.Opening);
        Assert.NotEqual(a.Key, a.Opening);

        // Without a system prompt a conversation shares nothing: its opening is its own key.
        var bare = Of(Encoding.UTF8.GetBytes("""{"messages":[{"role":"user","content":"Hi"}]}"""));
        Assert.Equal(bare.Key, bare.Opening);
        // A prompt body with a top-level system field shares that system field.
        var p1 = Of(Encoding.UTF8.GetBytes("""{"system":"Be kind.","prompt":"one"}"""));
        var p2 = Of(Encoding.UTF8.GetBytes("""{"system":"Be kind.","prompt":"two"}"""));
        Assert.Equal(p1.Opening, p2.Opening);
        Assert.NotEqual(p1.Key, p2.Key);
    }

    [Fact]
    public void Every_turn_of_one_conversation_has_the_same_key()
    {
        var turns = new List<string> { "What is the capital of France?" };
        var first = KeyOf(Chat(LongSystem, turns));
        for (var turn = 0; turn < 12; turn++)
        {
            // Each turn appends the answer and a new question; later turns pass the 16 KiB peek.
            turns.Add("The capital is Paris. " + new string('x', 1500 + turn));
            turns.Add($"And question {turn}?");
            Assert.Equal(first, KeyOf(Chat(LongSystem, turns)));
        }
        Assert.True(Chat(LongSystem, turns).Length > ConversationKey.PeekBytes);
    }

    [Fact]
    public void Conversations_sharing_a_system_prompt_get_different_keys()
    {
        var keys = Enumerable.Range(0, 200).Select(n => KeyOf(Chat(LongSystem, [$"Question number {n}"]))).ToHashSet();
        Assert.Equal(200, keys.Count);
        Assert.NotEqual(KeyOf(Chat("system A", ["same question"])), KeyOf(Chat("system B", ["same question"])));
    }

    [Fact]
    public void Fields_around_the_messages_do_not_change_the_key()
    {
        var plain = KeyOf(Chat(LongSystem, ["hi"]));
        Assert.Equal(plain, KeyOf(Chat(LongSystem, ["hi"], "\"temperature\":0.7,\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],")));
    }

    [Fact]
    public void Content_given_as_parts_is_keyed_by_its_text()
    {
        var parts = """{"messages":[{"role":"system","content":[{"type":"text","text":"sys"}]},{"role":"user","content":[{"type":"text","text":"q1"}]}]}"""u8.ToArray();
        var other = """{"messages":[{"role":"system","content":[{"type":"text","text":"sys"}]},{"role":"user","content":[{"type":"text","text":"q2"}]}]}"""u8.ToArray();
        var later = """{"messages":[{"role":"system","content":[{"type":"text","text":"sys"}]},{"role":"user","content":[{"type":"text","text":"q1"}]},{"role":"assistant","content":"a"},{"role":"user","content":"q"}]}"""u8.ToArray();
        Assert.NotEqual(KeyOf(parts), KeyOf(other));
        Assert.Equal(KeyOf(parts), KeyOf(later));
    }

    [Fact]
    public void A_prompt_is_keyed_by_its_opening_block()
    {
        var opening = new string('p', ConversationKey.PromptBlock);
        var first = KeyOf(Encoding.UTF8.GetBytes($"{{\"model\":\"m\",\"prompt\":\"{opening} turn one\"}}"));
        Assert.Equal(first, KeyOf(Encoding.UTF8.GetBytes($"{{\"model\":\"m\",\"prompt\":\"{opening} turn one, turn two\",\"max_tokens\":5}}")));
        Assert.NotEqual(first, KeyOf(Encoding.UTF8.GetBytes($"{{\"model\":\"m\",\"system\":\"s\",\"prompt\":\"{opening}\"}}")));
    }

    [Fact]
    public void Every_split_of_a_body_gives_the_full_key_or_none()
    {
        var body = Chat("sys", ["first question", "answer", "second"]);
        var full = KeyOf(body);
        var keyedFrom = -1;
        for (var cut = 0; cut < body.Length; cut++)
        {
            if (ConversationKey.TryCompute(body.AsSpan(0, cut), complete: false, out var key))
            {
                Assert.Equal(full, key);
                keyedFrom = keyedFrom < 0 ? cut : keyedFrom;
            }
            else
            {
                Assert.True(keyedFrom < 0, $"keyed at {keyedFrom} bytes but not at {cut}");
            }
        }
        // Keyed as soon as the first user message has closed, long before the body ends.
        Assert.Equal(Encoding.UTF8.GetString(body).IndexOf("\"first question\"}", StringComparison.Ordinal) + "\"first question\"}".Length, keyedFrom);
    }

    [Theory]
    [InlineData("")]
    [InlineData("not json")]
    [InlineData("[1,2,3]")]
    [InlineData("{\"model\":\"m\"}")]
    [InlineData("{\"messages\":[]}")]
    [InlineData("{\"messages\":\"text\"}")]
    [InlineData("{\"messages\":[{\"role\":\"system\",\"content\":\"only a system prompt\"}]}")]
    [InlineData("{\"messages\":[{\"role\":\"user\",\"content\":\"unterminated")]
    [InlineData("{\"messages\":[{\"role\":\"user\" \"content\":\"x\"}]}")]
    public void Bodies_without_a_conversation_opening_have_no_key(string body)
    {
        Assert.False(ConversationKey.TryCompute(Encoding.UTF8.GetBytes(body), complete: true, out _));
    }

    [Fact]
    public void A_system_prompt_longer_than_the_cap_still_keys_conversations_apart_by_their_first_question()
    {
        // An agent's system prompt (tools, instructions) over the per-message cap: its conversations
        // must not collapse into one key, or they would all be pinned to one backend.
        var huge = new string('s', ConversationKey.MaxContent + 2000);
        byte[] Body(string question, string more = "") => Encoding.UTF8.GetBytes(
            $"{{\"messages\":[{{\"role\":\"system\",\"content\":\"{huge}\"}},{{\"role\":\"user\",\"content\":\"{question}\"}}{more}]}}");
        Assert.NotEqual(KeyOf(Body("a")), KeyOf(Body("b")));
        Assert.Equal(KeyOf(Body("a")), KeyOf(Body("a", ",{\"role\":\"assistant\",\"content\":\"x\"},{\"role\":\"user\",\"content\":\"c\"}")));
        Assert.True(ConversationKey.TryCompute(Body("a"), true, out _, out var openingA));
        Assert.True(ConversationKey.TryCompute(Body("b"), true, out _, out var openingB));
        Assert.Equal(openingA, openingB);

        // A first question beyond the peek cannot be read: no key (the request is keyed by its client).
        var beyond = new string('s', ConversationKey.PeekBytes);
        var far = Encoding.UTF8.GetBytes($"{{\"messages\":[{{\"role\":\"system\",\"content\":\"{beyond}\"}},{{\"role\":\"user\",\"content\":\"a\"}}]}}");
        Assert.False(ConversationKey.TryCompute(far.AsSpan(0, ConversationKey.PeekBytes), complete: false, out _));
    }

    private static class JsonOptions
    {
        public static readonly JsonSerializerOptions Default = new() { TypeInfoResolver = new System.Text.Json.Serialization.Metadata.DefaultJsonTypeInfoResolver() };
    }
}
