//! /version.
