// Package interop checks callbox's media against clients nobody here wrote:
// `callbox send` streams RTP/JPEG and PCMU over UDP, ffmpeg decodes it from
// the SDP file callbox writes, and the test compares what ffmpeg decoded
// with what the synthetic sources produced.
package interop
