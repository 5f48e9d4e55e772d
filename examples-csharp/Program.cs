// Streams a reply through the job API polled once per "frame" (the Unity pattern: no native
// thread ever calls into managed code while generating), then cancels a second job, then runs
// two jobs at once with different priorities on an n_seq 2 engine, paused and resumed midway.
// A grammar decides a chat reply, and apply_template shows the prompt a tool list makes. A job
// with n_logprobs 3 reports its tokens' log-probabilities as JSON, checked with a small reader.
// With draft_max 8, prompt-lookup speculation guesses a reply that repeats its prompt.
// options_init's defaults for state checkpoints (32, 512 MiB), mmproj_path (NULL) and
// thread_priority (Normal) are checked, that an unknown thread_priority is refused, that this
// library (built without the mtmd cargo feature) refuses a projector, and that a text request
// counts no image tokens.
// Loading reports progress through a static [MonoPInvokeCallback] method with user_data. Exits
// non-zero on any failure.
//
//   usage: mono rigllama-csharp.exe MODEL.gguf     (librigllama.so on LD_LIBRARY_PATH)
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;
using AOT;
using Rigllama;

static class Program
{
    static int failures;

    static void Expect(bool ok, string what)
    {
        Console.WriteLine((ok ? "ok    " : "FAIL  ") + what);
        if (!ok) failures++;
    }

    // The delegate lives in a static field so the GC never collects it while native code
    // holds its function pointer.
    static readonly ProgressCallback ProgressDelegate = OnProgress;

    [MonoPInvokeCallback(typeof(ProgressCallback))]
    static int OnProgress(IntPtr userData, float progress)
    {
        // user_data is a GCHandle to a managed object: no static state needed.
        var seen = (List<float>)GCHandle.FromIntPtr(userData).Target;
        seen.Add(progress);
        return 0;   // 0 = keep loading
    }

    // EngineThreadPriority, not ThreadPriority: System.Threading and UnityEngine have one.
    static IntPtr CreateEngine(string modelPath, List<float> progress, uint nSeq = 0, string mmprojPath = null,
                               int threadPriority = (int)Rigllama.EngineThreadPriority.Normal)
    {
        var options = new EngineOptions();
        Native.Check(Native.rigllama_engine_options_init(ref options, Native.SizeOf<EngineOptions>()));
        if (nSeq != 0) options.n_seq = nSeq;
        IntPtr path = Native.Utf8Alloc(modelPath);
        IntPtr mmproj = mmprojPath == null ? IntPtr.Zero : Native.Utf8Alloc(mmprojPath);
        GCHandle progressHandle = GCHandle.Alloc(progress);
        try
        {
            options.model_path = path;
            options.mmproj_path = mmproj;   // IntPtr.Zero: none
            options.thread_priority = threadPriority;
            options.on_progress = Marshal.GetFunctionPointerForDelegate(ProgressDelegate);
            options.progress_user_data = GCHandle.ToIntPtr(progressHandle);
            IntPtr engine;
            Native.Check(Native.rigllama_engine_create(ref options, out engine));
            return engine;
        }
        finally
        {
            // The library copied the paths and calls on_progress only during create.
            progressHandle.Free();
            Marshal.FreeHGlobal(path);
            if (mmproj != IntPtr.Zero) Marshal.FreeHGlobal(mmproj);
        }
    }

    static IntPtr Submit(IntPtr engine, string prompt, uint maxTokens, int priority = 0)
    {
        var request = new Request();
        Native.Check(Native.rigllama_request_init(ref request, Native.SizeOf<Request>()));
        request.priority = priority;
        request.raw_prompt = 1;
        request.temperature = 0f;
        request.max_tokens = maxTokens;
        request.prompt = Native.Utf8Alloc(prompt);
        try
        {
            IntPtr job;
            Native.Check(Native.rigllama_engine_submit(engine, ref request, out job));
            return job;
        }
        finally
        {
            Marshal.FreeHGlobal(request.prompt);
        }
    }

    // One frame's worth of polling: drains what is ready without blocking. Returns the last
    // event kind seen (None when nothing was new).
    static EventKind PollFrame(IntPtr job, StringBuilder text, ref Event ev, bool echo = true)
    {
        while (true)
        {
            Native.Check(Native.rigllama_job_poll(job, 0, ref ev));
            var kind = (EventKind)ev.kind;
            if (kind == EventKind.Text)
            {
                string piece = Native.Utf8Read(ev.text, (int)(ulong)ev.text_len);
                text.Append(piece);
                if (echo) Console.Write(piece);
                continue;
            }
            return kind;
        }
    }

    static void StreamReply(IntPtr engine)
    {
        const string prompt = "The three primary colors are";
        IntPtr job = Submit(engine, prompt, 24);
        try
        {
            var ev = new Event();
            Native.Check(Native.rigllama_event_init(ref ev, Native.SizeOf<Event>()));
            var text = new StringBuilder();
            var clock = Stopwatch.StartNew();
            int frames = 0;
            EventKind kind = EventKind.None;
            Console.Write("[stream via job] " + prompt);
            while (clock.Elapsed < TimeSpan.FromSeconds(60))
            {
                frames++;
                kind = PollFrame(job, text, ref ev);
                if (kind == EventKind.Done || kind == EventKind.Error) break;
                Thread.Sleep(16);   // the rest of the frame: update, render, ...
            }
            Console.WriteLine();
            Expect(kind == EventKind.Done, "job ended with DONE (" + kind + ", " + Native.Utf8ReadZ(ev.message) + ") after " + frames + " frames");
            Expect(text.Length > 0, "job delivered text: " + text.Length + " characters");
            var usage = new Usage();
            Native.Check(Native.rigllama_usage_init(ref usage, Native.SizeOf<Usage>()));
            Native.Check(Native.rigllama_job_usage(job, ref usage));
            Expect(usage.completion_tokens > 0 && usage.completion_tokens <= 24, "usage.completion_tokens = " + usage.completion_tokens);
            Expect(usage.image_tokens == 0, "a text request has no image tokens (usage.image_tokens = " + usage.image_tokens + ")");
            Expect(usage.finish_reason == (int)FinishReason.Length || usage.finish_reason == (int)FinishReason.Stop,
                   "finish_reason = " + (FinishReason)usage.finish_reason);
        }
        finally
        {
            Native.rigllama_job_free(job);
        }
    }

    static void CancelJob(IntPtr engine)
    {
        IntPtr job = Submit(engine, "Once upon a time", 32);
        try
        {
            var ev = new Event();
            Native.Check(Native.rigllama_event_init(ref ev, Native.SizeOf<Event>()));
            var clock = Stopwatch.StartNew();
            do
                Native.Check(Native.rigllama_job_poll(job, 1000, ref ev));
            while ((EventKind)ev.kind == EventKind.None && clock.Elapsed < TimeSpan.FromSeconds(60));
            Expect((EventKind)ev.kind == EventKind.Text, "job produced text before the cancel");
            Native.Check(Native.rigllama_job_cancel(job));
            while ((EventKind)ev.kind != EventKind.Done && (EventKind)ev.kind != EventKind.Error
                   && clock.Elapsed < TimeSpan.FromSeconds(60))
                Native.Check(Native.rigllama_job_poll(job, 1000, ref ev));
            Console.WriteLine("[cancel job] final event " + (EventKind)ev.kind + ", status " + (Status)ev.status
                              + ", message \"" + Native.Utf8ReadZ(ev.message) + "\"");
            Expect((EventKind)ev.kind == EventKind.Error && (Status)ev.status == Status.Cancelled,
                   "cancelled job ended with ERROR/CANCELLED");
        }
        finally
        {
            Native.rigllama_job_free(job);
        }
    }

    // Two jobs on an n_seq 2 engine, submitted while it is paused so they start together and
    // polled once per frame; a pause while both run (a level load) holds them.
    static void TwoJobsAtOnce(string model)
    {
        IntPtr engine = CreateEngine(model, new List<float>(), 2);
        var jobs = new IntPtr[2];
        try
        {
            Native.Check(Native.rigllama_engine_pause(engine));
            jobs[0] = Submit(engine, "The blacksmith told a long story about", 12, 0);
            jobs[1] = Submit(engine, "The guard pointed to the exit and said", 12, 10);
            Native.Check(Native.rigllama_engine_resume(engine));
            var ev = new Event();
            Native.Check(Native.rigllama_event_init(ref ev, Native.SizeOf<Event>()));
            var texts = new[] { new StringBuilder(), new StringBuilder() };
            var done = new bool[2];
            bool paused = false;
            var clock = Stopwatch.StartNew();
            while (!(done[0] && done[1]) && clock.Elapsed < TimeSpan.FromSeconds(60))
            {
                for (int i = 0; i < 2; i++)
                {
                    if (done[i]) continue;
                    var kind = PollFrame(jobs[i], texts[i], ref ev, false);
                    if (kind != EventKind.Done && kind != EventKind.Error) continue;
                    done[i] = true;
                    var usage = new Usage();
                    Native.Check(Native.rigllama_usage_init(ref usage, Native.SizeOf<Usage>()));
                    uint tokens = kind == EventKind.Done && Native.rigllama_job_usage(jobs[i], ref usage) == 0 ? usage.completion_tokens : 0;
                    Expect(tokens == 12, "job " + i + " (priority " + (10 * i) + ") done with " + tokens + " tokens");
                }
                if (!paused && texts[0].Length > 0 && texts[1].Length > 0)
                {
                    paused = true;
                    Expect(!done[0] && !done[1], "both jobs ran at once");
                    Native.Check(Native.rigllama_engine_pause(engine));
                    Native.Check(Native.rigllama_engine_resume(engine));
                }
                Thread.Sleep(1);
            }
            Console.WriteLine("[two at once] " + texts[0] + " | " + texts[1]);
        }
        finally
        {
            foreach (IntPtr job in jobs) Native.rigllama_job_free(job);
            Native.rigllama_engine_destroy(engine);
        }
    }

    const string WeatherTools =
        "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Weather in a city\"," +
        "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}}]";

    // v0.2 structured output: a grammar decides rigllama_engine_chat's reply exactly, and
    // rigllama_engine_apply_template shows how a tool list reaches the model, without running it.
    static void GrammarAndTools(IntPtr engine)
    {
        var request = new Request();
        Native.Check(Native.rigllama_request_init(ref request, Native.SizeOf<Request>()));
        request.temperature = 0f;
        request.max_tokens = 8;
        request.reasoning = (int)Reasoning.Off;   // no thinking before a constrained answer
        request.prompt = Native.Utf8Alloc("Is the sky blue?");
        request.grammar = Native.Utf8Alloc("root ::= (\"yes\" | \"no\") \".\"");
        var usage = new Usage();
        Native.Check(Native.rigllama_usage_init(ref usage, Native.SizeOf<Usage>()));
        try
        {
            IntPtr message;
            Native.Check(Native.rigllama_engine_chat(engine, ref request, out message, ref usage));
            string json = Native.Utf8ReadZ(message);
            Native.rigllama_string_free(message);
            Console.WriteLine("[grammar] " + json);
            // Mono has no JSON parser in its default references: the compact reply is searched.
            Expect((json.Contains("\"content\":\"yes.\"") || json.Contains("\"content\":\"no.\""))
                   && usage.finish_reason == (int)FinishReason.Stop,
                   "the grammar decided the reply (finish_reason " + (FinishReason)usage.finish_reason + ")");
        }
        finally
        {
            Marshal.FreeHGlobal(request.grammar);
            Marshal.FreeHGlobal(request.prompt);
        }

        var ask = new Request();
        Native.Check(Native.rigllama_request_init(ref ask, Native.SizeOf<Request>()));
        ask.prompt = Native.Utf8Alloc("What is the weather in Paris?");
        ask.tools_json = Native.Utf8Alloc(WeatherTools);
        ask.tool_choice = (int)ToolChoice.Required;
        try
        {
            IntPtr prompt;
            Native.Check(Native.rigllama_engine_apply_template(engine, ref ask, out prompt));
            string text = Native.Utf8ReadZ(prompt);
            Native.rigllama_string_free(prompt);
            Expect(text.Contains("get_weather"), "apply_template renders the tool (" + text.Length + " characters)");

            ask.grammar = Native.Utf8Alloc("root ::= \"a\"");
            IntPtr refused;
            int status = Native.rigllama_engine_chat(engine, ref ask, out refused, ref usage);
            string error = Native.Utf8ReadZ(Native.rigllama_last_error());
            Native.rigllama_string_free(refused);   // NULL on failure; freeing NULL is a no-op
            Expect(status == (int)Status.InvalidArgument, "a grammar beside tools the model must call is refused: " + error);
        }
        finally
        {
            Marshal.FreeHGlobal(ask.grammar);   // IntPtr.Zero is a no-op
            Marshal.FreeHGlobal(ask.tools_json);
            Marshal.FreeHGlobal(ask.prompt);
        }
    }

    // v0.2 log-probabilities: with n_logprobs 3 the job sends Logprobs events, JSON arrays of
    // {"token","id","logprob","bytes","top_logprobs":[...]}, before the text of their tokens. At
    // temperature 0 the chosen token is the most likely one: the first of its top_logprobs.
    static void Logprobs(IntPtr engine)
    {
        var request = new Request();
        Native.Check(Native.rigllama_request_init(ref request, Native.SizeOf<Request>()));
        request.raw_prompt = 1;
        request.temperature = 0f;
        request.max_tokens = 8;
        request.n_logprobs = 3;
        request.prompt = Native.Utf8Alloc("The capital of France is");
        IntPtr job;
        try
        {
            Native.Check(Native.rigllama_engine_submit(engine, ref request, out job));
        }
        finally
        {
            Marshal.FreeHGlobal(request.prompt);
        }
        try
        {
            var ev = new Event();
            Native.Check(Native.rigllama_event_init(ref ev, Native.SizeOf<Event>()));
            var arrays = new List<string>();
            var entries = new List<object>();
            var tokens = new StringBuilder();
            string problem = "";
            var clock = Stopwatch.StartNew();
            do
            {
                Native.Check(Native.rigllama_job_poll(job, 1000, ref ev));
                if ((EventKind)ev.kind == EventKind.Logprobs)
                    arrays.Add(Native.Utf8Read(ev.text, (int)(ulong)ev.text_len));
            }
            while ((EventKind)ev.kind != EventKind.Done && (EventKind)ev.kind != EventKind.Error
                   && clock.Elapsed < TimeSpan.FromSeconds(60));
            bool ok = (EventKind)ev.kind == EventKind.Done && arrays.Count > 0;
            try
            {
                foreach (string json in arrays)
                    entries.AddRange((List<object>)MiniJson.Parse(json));
                ok &= entries.Count > 0;
                foreach (Dictionary<string, object> entry in entries)
                {
                    var top = (List<object>)entry["top_logprobs"];
                    ok &= (double)entry["logprob"] <= 0 && top.Count >= 1 && top.Count <= 3;
                    if (!ok) break;
                    double previous = 0;   // descending, all <= 0
                    foreach (Dictionary<string, object> alternative in top)
                    {
                        ok &= (double)alternative["logprob"] <= previous;
                        previous = (double)alternative["logprob"];
                    }
                    var first = (Dictionary<string, object>)top[0];
                    ok &= (double)entry["id"] == (double)first["id"] && (string)entry["token"] == (string)first["token"];
                    tokens.Append((string)entry["token"]).Append('|');
                }
            }
            catch (Exception e)   // malformed JSON, a missing key or a value of another type
            {
                ok = false;
                problem = ", " + e.Message;
            }
            Console.WriteLine("[logprobs] " + tokens);
            Expect(ok, entries.Count + " logprobs entries, each <= 0 with at most 3 alternatives, the first one chosen ("
                   + (EventKind)ev.kind + problem + ")");
        }
        finally
        {
            Native.rigllama_job_free(job);
        }
    }

    // v0.2 prompt-lookup speculation: with draft_max 8, tokens guessed from the prompt are
    // verified in the same decode; usage counts them (drafted_tokens) and the ones the sampler
    // confirmed (accepted_tokens). plain is the usage of a request without draft_max (0).
    static void PromptLookup(IntPtr engine, Usage plain)
    {
        Expect(plain.drafted_tokens == 0 && plain.accepted_tokens == 0,
               "without draft_max nothing is guessed (drafted " + plain.drafted_tokens + ", accepted " + plain.accepted_tokens + ")");
        var request = new Request();
        Native.Check(Native.rigllama_request_init(ref request, Native.SizeOf<Request>()));
        request.raw_prompt = 1;
        request.temperature = 0f;
        request.max_tokens = 48;
        request.draft_max = 8;
        request.prompt = Native.Utf8Alloc("Repeat exactly: the quick brown fox jumps over the lazy dog. " +
                                          "the quick brown fox jumps over the lazy dog.");
        var usage = new Usage();
        Native.Check(Native.rigllama_usage_init(ref usage, Native.SizeOf<Usage>()));
        IntPtr text;
        try
        {
            Native.Check(Native.rigllama_engine_complete(engine, ref request, out text, ref usage));
        }
        finally
        {
            Marshal.FreeHGlobal(request.prompt);
        }
        Console.WriteLine("[draft] " + Native.Utf8ReadZ(text).Replace("\n", "\\n") + ": " + usage.completion_tokens + " tokens, "
                          + usage.drafted_tokens + " guessed, " + usage.accepted_tokens + " accepted");
        Native.rigllama_string_free(text);
        Expect(usage.drafted_tokens > 0 && usage.accepted_tokens <= usage.drafted_tokens,
               "draft_max 8 guesses from a repeated prompt (drafted " + usage.drafted_tokens + ", accepted " + usage.accepted_tokens + ")");
    }

    static int Main(string[] args)
    {
        string model = args.Length > 0 ? args[0] : Environment.GetEnvironmentVariable("RIGLLAMA_MODEL");
        if (string.IsNullOrEmpty(model))
        {
            Console.Error.WriteLine("usage: mono rigllama-csharp.exe MODEL.gguf (or set RIGLLAMA_MODEL)");
            return 2;
        }
        try
        {
            Console.WriteLine("rigllama " + Native.Utf8ReadZ(Native.rigllama_version()) + " from C# (" + Environment.Version + ")");
            string layout = Native.CheckLayout();
            Expect(layout == "", "struct sizes and offsets match the C header" + (layout == "" ? "" : ": " + layout));
            var defaults = new EngineOptions();
            Native.Check(Native.rigllama_engine_options_init(ref defaults, Native.SizeOf<EngineOptions>()));
            Expect(defaults.max_checkpoints == 32 && defaults.max_checkpoint_bytes == 512UL << 20,
                   "options_init's checkpoint defaults: max_checkpoints " + defaults.max_checkpoints + " (32), max_checkpoint_bytes "
                   + defaults.max_checkpoint_bytes + " (512 MiB)");
            Expect(defaults.mmproj_path == IntPtr.Zero, "options_init's mmproj_path is NULL (" + defaults.mmproj_path + ")");
            Expect(defaults.thread_priority == (int)Rigllama.EngineThreadPriority.Normal,
                   "options_init's thread_priority is Normal (" + defaults.thread_priority + ")");

            // A value outside EngineThreadPriority is refused, naming it: the field reaches C at its offset.
            try
            {
                IntPtr refused = CreateEngine(model, new List<float>(), 0, null, 7);
                Native.rigllama_engine_destroy(refused);
                Expect(false, "thread_priority 7 fails");
            }
            catch (RigllamaException e)
            {
                Expect(e.Status == Status.InvalidArgument && e.Message.Contains("thread_priority 7"),
                       "thread_priority 7 fails with INVALID_ARGUMENT: " + e.Message);
            }

            // The default build has no vision: a projector is refused before any model loads.
            try
            {
                IntPtr refused = CreateEngine(model, new List<float>(), 0, "/nonexistent/mmproj.gguf");
                Native.rigllama_engine_destroy(refused);
                Expect(false, "a projector without the mtmd feature fails");
            }
            catch (RigllamaException e)
            {
                Expect(e.Status == Status.InvalidArgument && e.Message.Contains("mtmd"),
                       "a projector without the mtmd feature fails with INVALID_ARGUMENT: " + e.Message);
            }

            // A non-ASCII path goes in as UTF-8 and must come back intact in the error message.
            const string missing = "/nonexistent/modèle-ü.gguf";
            try
            {
                CreateEngine(missing, new List<float>());
                Expect(false, "a missing model fails");
            }
            catch (RigllamaException e)
            {
                Expect(e.Status == Status.ModelLoadFailed && e.Message.Contains(missing), "a missing model fails: " + e.Message);
            }

            var progress = new List<float>();
            IntPtr engine = CreateEngine(model, progress);
            try
            {
                Expect(progress.Count > 0 && progress[progress.Count - 1] >= 0.99f,
                       "progress callback ran " + progress.Count + " times, last " + (progress.Count > 0 ? progress[progress.Count - 1] : -1));
                StreamReply(engine);
                CancelJob(engine);

                var request = new Request();
                Native.Check(Native.rigllama_request_init(ref request, Native.SizeOf<Request>()));
                request.raw_prompt = 1;
                request.temperature = 0f;
                request.max_tokens = 4;
                request.prompt = Native.Utf8Alloc("Two plus two is");
                var usage = new Usage();
                Native.Check(Native.rigllama_usage_init(ref usage, Native.SizeOf<Usage>()));
                IntPtr text;
                int status = Native.rigllama_engine_complete(engine, ref request, out text, ref usage);
                string error = Native.Utf8ReadZ(Native.rigllama_last_error());
                Marshal.FreeHGlobal(request.prompt);
                Expect(status == 0 && Native.Utf8ReadZ(text).Length > 0, "the engine serves a request after the cancel" + (status == 0 ? "" : ": " + error));
                Native.rigllama_string_free(text);

                // An embedding: ask for the size with a null buffer, then fill a float[].
                IntPtr sentence = Native.Utf8Alloc("The cat sat on the mat.");
                try
                {
                    UIntPtr dims;
                    Native.Check(Native.rigllama_engine_embed(engine, sentence, null, UIntPtr.Zero, out dims));
                    var vector = new float[(int)dims];
                    Native.Check(Native.rigllama_engine_embed(engine, sentence, vector, dims, out dims));
                    double norm = 0;
                    foreach (float x in vector) norm += (double)x * x;
                    Expect(vector.Length > 0 && Math.Abs(Math.Sqrt(norm) - 1.0) < 1e-3,
                           "an embedding of " + vector.Length + " floats with norm " + Math.Sqrt(norm).ToString("F6"));
                }
                finally
                {
                    Marshal.FreeHGlobal(sentence);
                }
                GrammarAndTools(engine);
                Logprobs(engine);
                PromptLookup(engine, usage);
            }
            finally
            {
                Native.rigllama_engine_destroy(engine);
            }
            TwoJobsAtOnce(model);
        }
        catch (Exception e)
        {
            Console.WriteLine("FAIL  unexpected exception: " + e);
            return 1;
        }
        Console.WriteLine(failures > 0 ? "FAILED" : "all passed");
        return failures > 0 ? 1 : 0;
    }
}

// The smallest JSON reader the checks need (Mono has no JSON parser in its default references):
// objects become Dictionary<string, object>, arrays List<object>, numbers double, strings
// string, true and false bool, null null. Malformed text throws FormatException.
static class MiniJson
{
    public static object Parse(string text)
    {
        int i = 0;
        object value = Value(text, ref i);
        SkipSpace(text, ref i);
        if (i != text.Length) throw new FormatException("text after the value at " + i);
        return value;
    }

    static void SkipSpace(string s, ref int i) { while (i < s.Length && " \t\r\n".IndexOf(s[i]) >= 0) i++; }

    static char Take(string s, ref int i)
    {
        if (i >= s.Length) throw new FormatException("unexpected end of the JSON text");
        return s[i++];
    }

    static object Value(string s, ref int i)
    {
        SkipSpace(s, ref i);
        char c = Take(s, ref i);
        if (c == '"') return Str(s, ref i);
        if (c == '{' || c == '[')
        {
            char close = c == '{' ? '}' : ']';
            var obj = new Dictionary<string, object>();
            var list = new List<object>();
            SkipSpace(s, ref i);
            if (i < s.Length && s[i] == close) i++;
            else
                do
                {
                    if (close == '}')
                    {
                        SkipSpace(s, ref i);
                        if (Take(s, ref i) != '"') throw new FormatException("expected a key at " + (i - 1));
                        string key = Str(s, ref i);
                        SkipSpace(s, ref i);
                        if (Take(s, ref i) != ':') throw new FormatException("expected ':' at " + (i - 1));
                        obj[key] = Value(s, ref i);
                    }
                    else
                        list.Add(Value(s, ref i));
                    SkipSpace(s, ref i);
                    c = Take(s, ref i);
                    if (c != ',' && c != close) throw new FormatException("expected ',' or '" + close + "' at " + (i - 1));
                }
                while (c == ',');
            return close == '}' ? (object)obj : list;
        }
        int start = --i;   // true, false, null or a number
        while (i < s.Length && "+-.0123456789eEtruefalsn".IndexOf(s[i]) >= 0) i++;
        string word = s.Substring(start, i - start);
        if (word == "true" || word == "false") return word == "true";
        if (word == "null") return null;
        return double.Parse(word, NumberStyles.Float, CultureInfo.InvariantCulture);
    }

    // A string's characters after its opening quote, through the closing one.
    static string Str(string s, ref int i)
    {
        var sb = new StringBuilder();
        while (true)
        {
            char c = Take(s, ref i);
            if (c == '"') return sb.ToString();
            if (c != '\\') { sb.Append(c); continue; }
            c = Take(s, ref i);
            int escape = "\"\\/bfnrt".IndexOf(c);
            if (escape >= 0)
                sb.Append("\"\\/\b\f\n\r\t"[escape]);
            else if (c == 'u' && i + 4 <= s.Length)
            {
                sb.Append((char)int.Parse(s.Substring(i, 4), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture));
                i += 4;
            }
            else
                throw new FormatException("bad escape at " + (i - 1));
        }
    }
}
