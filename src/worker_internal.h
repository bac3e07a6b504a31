// What worker.cpp and worker_io.cpp share and nobody else needs.
#pragma once

#include <chrono>

namespace rmq2pg::worker_detail {

// How long one wait for a delivery may block while the batch is empty: bounds how late a worker
// notices a stop request.
constexpr std::chrono::milliseconds kIdlePoll{200};

// How long one read-ahead of a stream source (stream_source.h) may read what has arrived, and how
// long the guard then waits before the next: the worker waits for a read under way when its
// PostgreSQL call returns, so this is about the most a write is lengthened by reading ahead.
constexpr std::chrono::milliseconds kReadAheadSlice{1};

// Thrown inside the worker when the shutdown deadline passed with work still unsettled; caught
// by Worker::run().
struct ShutdownDeadline {};

// Thrown between batches when the streams this worker holds changed (a lease taken, released or
// claimed): Worker::run() closes the source and opens one for what it holds now.
struct Reassigned {};

}  // namespace rmq2pg::worker_detail
