// Package indexset holds sets of image indexes and writes them as the compressed ranges that
// ImageGenerationJob status uses ("0-3,7"), so a status stays small whatever the number of
// images.
package indexset
