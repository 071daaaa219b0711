package imagesrc

import "github.com/google/go-containerregistry/pkg/name"

// DockerName is skopeo's Name: the repository with the registry spelled as
// docker spells it.
func DockerName(ref name.Reference) string {
	reg := ref.Context().RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	return reg + "/" + ref.Context().RepositoryStr()
}

// DisplayName spells a reference as docker does: docker.io/library/alpine:latest.
func DisplayName(ref name.Reference) string {
	repo := DockerName(ref)
	if d, ok := ref.(name.Digest); ok {
		return repo + "@" + d.DigestStr()
	}
	return repo + ":" + ref.Identifier()
}

// localNames names an image read from a layout or archive by its ref name,
// when that is a valid image reference.
func localNames(refName string) []string {
	if refName == "" {
		return nil
	}
	if ref, err := name.NewTag(refName); err == nil {
		return []string{DisplayName(ref)}
	}
	return nil
}
