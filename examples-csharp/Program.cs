// A program that uses the Rigllama package: it references lib/netstandard2.0/Rigllama.dll and
// gets librigllama.so from the package's runtimes/linux-x64/native/ (on Mono through
// Rigllama.dll.config). It loads a model with a progress callback written the Unity way, streams
// a reply through a job polled once per "frame" (no native thread ever calls into managed code
// while generating), then cancels a second job. It prints which librigllama.so it loaded.
// bindings/csharp/tests (NUnit) checks the binding itself. Exits non-zero on any failure.
//
//   build: mcs -r:PACKAGE/lib/netstandard2.0/Rigllama.dll -out:rigllama-csharp.exe Program.cs
//   run:   MONO_PATH=PACKAGE/lib/netstandard2.0 mono rigllama-csharp.exe MODEL.gguf
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;
using AOT;
using Rigllama;

static class Program
{
    // The delegate lives in a static field so the GC never collects it while native code holds
    // its function pointer.
    static readonly ProgressCallback ProgressDelegate = OnProgress;

    [MonoPInvokeCallback(typeof(ProgressCallback))]
    static int OnProgress(IntPtr userData, float progress)
    {
        // user_data is a GCHandle to a managed object: no static state needed.
        ((List<float>)GCHandle.FromIntPtr(userData).Target).Add(progress);
        return 0;   // 0 = keep loading
    }

    static Engine Open(string model, List<float> progress)
    {
        GCHandle handle = GCHandle.Alloc(progress);
        try
        {
            EngineOptions options = Engine.DefaultOptions();
            options.on_progress = Marshal.GetFunctionPointerForDelegate(ProgressDelegate);
            options.progress_user_data = GCHandle.ToIntPtr(handle);
            return new Engine(model, options);
        }
        finally
        {
            handle.Free();   // on_progress runs only during create
        }
    }

    static string LoadedLibrary()
    {
        foreach (string line in File.ReadAllLines("/proc/self/maps"))
            if (line.Contains("librigllama")) return line.Substring(line.IndexOf('/'));
        return "(not loaded)";
    }

    static int Main(string[] args)
    {
        if (args.Length < 1)
        {
            Console.Error.WriteLine("usage: mono rigllama-csharp.exe MODEL.gguf");
            return 2;
        }
        try
        {
            Console.WriteLine("rigllama " + Native.Utf8ReadZ(Native.rigllama_version()) + " from C# (" + Environment.Version + ")");
            Console.WriteLine("native library: " + LoadedLibrary());
            var progress = new List<float>();
            using (Engine engine = Open(args[0], progress))
            {
                Console.WriteLine("loaded (" + progress.Count + " progress calls)");

                Request request = Engine.DefaultRequest();
                request.raw_prompt = 1;
                request.temperature = 0f;
                request.max_tokens = 24;
                const string prompt = "The three primary colors are";
                var text = new StringBuilder();
                int frames = 0;
                JobEvent ev;
                Console.Write("[stream] " + prompt);
                using (Job job = engine.Submit(prompt, request))
                {
                    do
                    {
                        frames++;
                        // One frame's polling: drain what is ready, never block.
                        for (ev = job.Poll(0); ev.Kind == EventKind.Text; ev = job.Poll(0))
                        {
                            Console.Write(ev.Text);
                            text.Append(ev.Text);
                        }
                        if (!ev.Final) Thread.Sleep(16);   // the rest of the frame: update, render, ...
                    }
                    while (!ev.Final);
                    Console.WriteLine();
                    Usage usage = job.Usage();
                    Console.WriteLine("[stream] " + usage.completion_tokens + " tokens over " + frames + " frames, " + ev.Kind);
                    if (ev.Kind != EventKind.Done || text.Length == 0) return 1;
                }

                request.max_tokens = 256;
                using (Job job = engine.Submit("Once upon a time", request))
                {
                    var clock = Stopwatch.StartNew();
                    do ev = job.Poll(1000); while (ev.Kind == EventKind.None && clock.Elapsed < TimeSpan.FromSeconds(60));
                    job.Cancel();
                    do ev = job.Poll(1000); while (!ev.Final && clock.Elapsed < TimeSpan.FromSeconds(60));
                    Console.WriteLine("[cancel] " + ev.Kind + "/" + ev.Status + ": " + ev.Message);
                    if (ev.Status != Status.Cancelled) return 1;
                }
            }
        }
        catch (RigllamaException e)
        {
            Console.WriteLine("FAIL  " + e.Message);
            return 1;
        }
        Console.WriteLine("all passed");
        return 0;
    }
}
